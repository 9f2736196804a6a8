// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/http_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <utility>

namespace lockunit::etcd {

namespace {

constexpr size_t kMaxResponse = 16 * 1024 * 1024;

bool globalInit() {
    static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    return ok;
}

std::vector<int> openFds() {
    std::vector<int> fds;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.' && std::atoi(e->d_name) != ::dirfd(d))
                fds.push_back(std::atoi(e->d_name));
        ::closedir(d);
    }
    return fds;
}

long msLeft(TimePoint deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - BootClock::now()).count();
    return std::max<long>(1, static_cast<long>(std::min<long long>(left, 3'600'000)));
}

// Every socket curl opens is O_CLOEXEC: the payload never inherits a connection to etcd.
curl_socket_t openSocket(void* clientp, curlsocktype, curl_sockaddr* address) {
    auto* tag = static_cast<HttpClient::SocketTag*>(clientp);
    int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    tag->client->socketOpened(fd, tag->stream);
    return fd;
}

int closeSocket(void* clientp, curl_socket_t fd) {
    auto* tag = static_cast<HttpClient::SocketTag*>(clientp);
    tag->client->socketClosing(fd);
    return ::close(fd);
}

} // namespace

struct HttpClient::Transfer {
    HttpClient* owner = nullptr;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    Kind kind = Kind::Call;
    HttpCall* call = nullptr; // Kind::Call only
    std::string path, body;
    size_t endpoint = 0;
    size_t attempts = 0;         // endpoints this call tried before this one
    TimePoint attemptDeadline{}; // when to give up on this endpoint and try the next
    std::string lineBuffer;      // the stream's unfinished line
    char errorBuffer[CURL_ERROR_SIZE] = {};

    ~Transfer() {
        if (easy) {
            curl_multi_remove_handle(owner->multi_, easy);
            curl_easy_cleanup(easy);
        }
        curl_slist_free_all(headers);
    }
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<HttpClient>> HttpClient::create(HttpOptions options) {
    if (!globalInit()) return makeError(Errc::System, "libcurl initialisation failed");
    std::unique_ptr<HttpClient> client(new HttpClient(std::move(options)));
    if (auto r = client->init(); !r) return r.error();
    return client;
}

Result<void> HttpClient::init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epoll_.valid() || !event_.valid())
        return makeError(Errc::System, std::string("epoll/eventfd: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = event_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) < 0)
        return makeError(Errc::System, std::string("epoll_ctl: ") + std::strerror(errno));
    // libcurl 7.88 makes the multi handle's wake-up socketpair without SOCK_CLOEXEC; mark
    // whatever descriptors it opened, so that the payload inherits none of them.
    auto before = openFds();
    multi_ = curl_multi_init();
    if (!multi_) return makeError(Errc::System, "curl_multi_init failed");
    // Concurrent calls each get a connection of their own at once: no waiting to learn
    // whether a busy connection could multiplex (HTTP/1.1 never does), and enough idle
    // connections kept for the next batch.
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 8L);
    for (int fd : openFds())
        if (std::find(before.begin(), before.end(), fd) == before.end())
            ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
    return {};
}

HttpClient::~HttpClient() {
    transfers_.clear();
    stream_ = nullptr;
    if (multi_) curl_multi_cleanup(multi_); // closes cached connections through closeSocket
}

std::string HttpClient::currentEndpoint() const {
    return options_.url.endpoints[current_].display();
}

void HttpClient::socketOpened(int fd, bool stream) {
    if (!stream) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) streamSockets_.push_back(fd);
}

void HttpClient::socketClosing(int fd) {
    auto it = std::find(streamSockets_.begin(), streamSockets_.end(), fd);
    if (it == streamSockets_.end()) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    streamSockets_.erase(it);
}

void HttpClient::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_.get(), &one, sizeof one);
}

static size_t writeCallback(char* data, size_t size, size_t count, void* userdata);

Result<HttpClient::Transfer*> HttpClient::startTransfer(Kind kind, HttpCall* call,
                                                        const std::string& path,
                                                        const std::string& body, size_t endpoint,
                                                        TimePoint deadline, size_t attempts) {
    auto t = std::make_unique<Transfer>();
    t->owner = this;
    t->kind = kind;
    t->call = call;
    t->attempts = attempts;
    // Each endpoint still untried gets an equal share of the time left: a member that
    // accepts the connection but does not answer (stopped, partitioned) costs only its share.
    const auto now = BootClock::now();
    const size_t untried =
        options_.url.endpoints.size() - std::min(attempts, options_.url.endpoints.size() - 1);
    t->attemptDeadline = deadline == TimePoint::max() || deadline <= now
                             ? deadline
                             : now + (deadline - now) / static_cast<long>(untried);
    t->path = path;
    t->body = body;
    t->endpoint = endpoint;
    t->easy = curl_easy_init();
    if (!t->easy) return makeError(Errc::System, "curl_easy_init failed");
    CURL* e = t->easy;
    const bool stream = kind == Kind::Stream;
    std::string url = options_.url.endpoints[endpoint].baseUrl(options_.url.tls) + path;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, ""); // never through $http_proxy
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.c_str());
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "Expect:");
    if (!authorization_.empty())
        t->headers = curl_slist_append(t->headers, ("Authorization: " + authorization_).c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, writeCallback);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errorBuffer);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    SocketTag* tag = stream ? &streamTag_ : &callTag_;
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, openSocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, tag);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, closeSocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, tag);
    long connectMs = static_cast<long>(options_.connectTimeout.count());
    if (stream) {
        // Its own connection, closed when it ends: its socket is ours to poll.
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connectMs);
    } else {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, std::min(connectMs, msLeft(deadline)));
        // run() abandons a call at its deadline by itself. This is only the backstop for
        // the unanswered rest of a transfer that nobody waits for any more: generous, so
        // that a keepalive's tail read at the next renewal does not count as a timeout
        // (which would close its connection).
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max(msLeft(deadline), 60'000L));
    }
    if (options_.url.tls) {
        if (!options_.caFile.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.caFile.c_str());
        if (!options_.certFile.empty())
            curl_easy_setopt(e, CURLOPT_SSLCERT, options_.certFile.c_str());
        if (!options_.keyFile.empty())
            curl_easy_setopt(e, CURLOPT_SSLKEY, options_.keyFile.c_str());
    }
    if (call) call->endpoint = options_.url.endpoints[endpoint].display();
    if (CURLMcode m = curl_multi_add_handle(multi_, e); m != CURLM_OK)
        return makeError(Errc::System,
                         std::string("curl_multi_add_handle: ") + curl_multi_strerror(m));
    Transfer* raw = t.get();
    transfers_.push_back(std::move(t));
    return raw;
}

static size_t writeCallback(char* data, size_t size, size_t count, void* userdata) {
    auto* t = static_cast<HttpClient::Transfer*>(userdata);
    size_t n = size * count;
    if (t->kind == HttpClient::Kind::Background) return n; // nobody waits for it
    if (t->kind == HttpClient::Kind::Call) {
        HttpCall* call = t->call;
        if (call->response.size() + n > kMaxResponse) return 0; // aborts the transfer
        call->response.append(data, n);
        if (call->firstLine && call->response.find('\n') != std::string::npos) {
            // The answer is complete; the stream's end (which etcd's gateway sends a few ms
            // later) is read in the background, so that the connection stays reusable.
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &call->status);
            t->kind = HttpClient::Kind::Background;
            t->call = nullptr;
            t->owner->answeredEarly();
        }
        return n;
    }
    t->lineBuffer.append(data, n);
    if (t->lineBuffer.size() > kMaxResponse) return 0;
    t->owner->streamData(t);
    return n;
}

int HttpClient::failAttempt(Transfer* t, const std::string& why, TimePoint deadline) {
    HttpCall* call = t->call;
    const size_t n = options_.url.endpoints.size();
    // The next endpoint for this call and, unless another call moved on already, for every
    // later call.
    if (current_ == t->endpoint) current_ = (current_ + 1) % n;
    call->failures += options_.url.endpoints[t->endpoint].display() + ": " + why;
    const size_t attempts = t->attempts + 1, next = (t->endpoint + 1) % n;
    const std::string path = t->path, body = t->body;
    finishTransfer(t);
    call->response.clear();
    if (attempts < n && BootClock::now() < deadline) {
        call->failures += "; ";
        auto again = startTransfer(Kind::Call, call, path, body, next, deadline, attempts);
        if (again) return 0;
        call->failures += again.error().message;
    }
    call->transportError = makeError(Errc::Unavailable, call->failures);
    return 1;
}

void HttpClient::finishTransfer(Transfer* t) {
    auto it = std::find_if(transfers_.begin(), transfers_.end(),
                           [&](const auto& p) { return p.get() == t; });
    if (it != transfers_.end()) transfers_.erase(it); // ~Transfer removes it from the multi
}

int HttpClient::collect(TimePoint deadline) {
    int finished = 0;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
        if (!t) continue;
        CURLcode code = msg->data.result;
        if (t->kind == Kind::Stream) {
            finishTransfer(t);
            streamEnded();
            continue;
        }
        if (t->kind == Kind::Background) {
            finishTransfer(t);
            continue;
        }
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        if (code != CURLE_OK) {
            finished += failAttempt(
                t, t->errorBuffer[0] ? t->errorBuffer : curl_easy_strerror(code), deadline);
            continue;
        }
        // 503 is etcd's gRPC Unavailable ("no leader", "leader changed"): another member may
        // do better. On the last endpoint, its answer is the outcome.
        if (status == 503 && t->attempts + 1 < options_.url.endpoints.size() &&
            BootClock::now() < deadline) {
            finished += failAttempt(t, "HTTP 503", deadline);
            continue;
        }
        t->call->status = status;
        finishTransfer(t);
        ++finished;
    }
    return finished;
}

Result<void> HttpClient::run(const std::vector<HttpCall*>& calls, TimePoint deadline,
                             Interrupt& interrupt) {
    auto abandon = [&] {
        for (auto it = transfers_.begin(); it != transfers_.end();) {
            if ((*it)->kind == Kind::Call &&
                std::find(calls.begin(), calls.end(), (*it)->call) != calls.end())
                it = transfers_.erase(it);
            else
                ++it;
        }
    };
    // Finish what earlier calls left running (the tails of early-answered streams), so that
    // their connections are free for these calls.
    int running = 0;
    curl_multi_perform(multi_, &running);
    collect(deadline);
    for (HttpCall* call : calls) {
        call->transportError.reset();
        call->failures.clear();
        call->status = 0;
        call->response.clear();
        auto t = startTransfer(Kind::Call, call, call->path, call->body, current_, deadline, 0);
        if (!t) {
            abandon();
            return t.error();
        }
    }
    int pending = static_cast<int>(calls.size());
    answeredEarly_ = 0;
    for (;;) {
        // The deadline first: after a SIGSTOP nothing is sent or read once it has passed.
        if (BootClock::now() >= deadline) {
            abandon();
            std::string where = currentEndpoint();
            // A member that accepts but does not answer (partitioned, stopped, overloaded):
            // the next call tries the next one.
            current_ = (current_ + 1) % options_.url.endpoints.size();
            return makeError(Errc::Unavailable, "no answer from etcd at " + where + " in time");
        }
        curl_multi_perform(multi_, &running);
        pending -= collect(deadline);
        pending -= std::exchange(answeredEarly_, 0);
        // Calls whose endpoint took its share of the time without answering move on.
        const auto now = BootClock::now();
        std::vector<Transfer*> late;
        TimePoint wakeAt = deadline;
        for (const auto& t : transfers_) {
            if (t->kind != Kind::Call || t->attempts + 1 >= options_.url.endpoints.size()) continue;
            if (now >= t->attemptDeadline)
                late.push_back(t.get());
            else
                wakeAt = std::min(wakeAt, t->attemptDeadline);
        }
        for (Transfer* t : late)
            pending -= failAttempt(t, "no answer in time", deadline);
        if (!late.empty()) {
            curl_multi_perform(multi_, &running);
            continue;
        }
        if (pending <= 0) return {};
        curl_waitfd extra{};
        extra.fd = interrupt.fd();
        extra.events = CURL_WAIT_POLLIN;
        int numfds = 0;
        CURLMcode m =
            curl_multi_poll(multi_, &extra, extra.fd >= 0 ? 1 : 0,
                            static_cast<int>(std::min<long>(msLeft(wakeAt), 1000)), &numfds);
        if (m != CURLM_OK) {
            abandon();
            return makeError(Errc::System,
                             std::string("curl_multi_poll: ") + curl_multi_strerror(m));
        }
        if (extra.fd >= 0 && (extra.revents & CURL_WAIT_POLLIN) && interrupt.stopRequested()) {
            abandon();
            return makeError(Errc::Interrupted, "interrupted");
        }
    }
}

Result<void> HttpClient::startStream(const std::string& path, const std::string& body,
                                     std::function<void(std::string_view)> onLine) {
    stopStream();
    onLine_ = std::move(onLine);
    auto t = startTransfer(Kind::Stream, nullptr, path, body, current_, TimePoint::max(), 0);
    if (!t) return t.error();
    stream_ = *t;
    int running = 0;
    curl_multi_perform(multi_, &running); // starts connecting, so the socket exists to poll
    collect(TimePoint::max());
    answeredEarly_ = 0;
    return {};
}

void HttpClient::stopStream() {
    if (!stream_) return;
    Transfer* t = stream_;
    stream_ = nullptr;
    finishTransfer(t);
}

void HttpClient::streamEnded() {
    stream_ = nullptr;
    wake();
}

void HttpClient::streamData(Transfer* t) {
    size_t start = 0;
    for (;;) {
        size_t nl = t->lineBuffer.find('\n', start);
        if (nl == std::string::npos) break;
        std::string_view line(t->lineBuffer.data() + start, nl - start);
        if (!line.empty() && onLine_) onLine_(line);
        start = nl + 1;
    }
    t->lineBuffer.erase(0, start);
}

void HttpClient::send(const std::string& path, const std::string& body, TimePoint deadline) {
    if (!startTransfer(Kind::Background, nullptr, path, body, current_, deadline, 0)) return;
    int running = 0;
    curl_multi_perform(multi_, &running); // on a pooled connection, the request leaves now
    collect(deadline);
    answeredEarly_ = 0;
}

void HttpClient::pump() {
    uint64_t value;
    while (::read(event_.get(), &value, sizeof value) > 0) {
    }
    int running = 0;
    curl_multi_perform(multi_, &running);
    collect(BootClock::now());
    answeredEarly_ = 0;
}

} // namespace lockunit::etcd
