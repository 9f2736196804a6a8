// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/redis/redis_connection.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <hiredis.h>
#include <poll.h>
#include <sys/socket.h>

#include "backends/io.hpp"

namespace lockunit::redis {

bool Reply::errorIs(const char* code) const {
    if (type != Type::Error) return false;
    size_t n = std::strlen(code);
    return str.compare(0, n, code) == 0 && (str.size() == n || str[n] == ' ');
}

long long Reply::asInteger(long long fallback) const {
    if (type == Type::Integer) return integer;
    if (type == Type::String && !str.empty()) {
        char* end = nullptr;
        long long v = std::strtoll(str.c_str(), &end, 10);
        if (end && *end == 0) return v;
    }
    return fallback;
}

namespace {

Reply convert(const redisReply* r) {
    Reply out;
    switch (r->type) {
    case REDIS_REPLY_STRING:
        out.type = Reply::Type::String;
        break;
    case REDIS_REPLY_STATUS:
        out.type = Reply::Type::Status;
        break;
    case REDIS_REPLY_ERROR:
        out.type = Reply::Type::Error;
        break;
    case REDIS_REPLY_INTEGER:
        out.type = Reply::Type::Integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = Reply::Type::Array;
        break;
    default:
        out.type = Reply::Type::Nil;
        break;
    }
    if (r->str) out.str.assign(r->str, r->len);
    out.integer = r->integer;
    for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(convert(r->element[i]));
    return out;
}

} // namespace

Connection::~Connection() {
    close();
}

int Connection::fd() const {
    return c_ ? c_->fd : -1;
}

void Connection::close() {
    if (c_) redisFree(c_);
    c_ = nullptr;
    connecting_ = false;
    used_ = false;
    loginSteps_.clear();
}

Error Connection::fail(Errc code, const std::string& what) {
    close();
    return makeError(code, "redis " + target_.describe() + ": " + what);
}

Result<void> Connection::open(const Target& target, const Login& login, TimePoint connectBy,
                              Interrupt& interrupt) {
    close();
    target_ = target;
    connectBy_ = connectBy;
    requireMaster_ = login.requireMaster;
    user_ = login.user;
    if (target.unixPath.empty()) {
        auto ip = io::resolveHost(target.host, connectBy, interrupt);
        if (!ip)
            return makeError(ip.error().code,
                             "redis " + target.describe() + ": " + ip.error().message);
        c_ = redisConnectNonBlock(ip->c_str(), target.port);
    } else {
        c_ = redisConnectUnixNonBlock(target.unixPath.c_str());
    }
    if (!c_) return makeError(Errc::System, "redis " + target.describe() + ": out of memory");
    if (c_->err) return fail(Errc::Unavailable, std::string("connect: ") + c_->errstr);
    // hiredis does not set close-on-exec; the payload must not inherit our connection.
    ::fcntl(c_->fd, F_SETFD, FD_CLOEXEC);
    connecting_ = true;

    if (login.password || !login.user.empty()) {
        if (login.user.empty())
            append({"AUTH", *login.password});
        else
            append({"AUTH", login.user, login.password.value_or("")});
        loginSteps_.push_back("AUTH");
    }
    if (login.db != 0) {
        append({"SELECT", std::to_string(login.db)});
        loginSteps_.push_back("SELECT");
    }
    // ROLE (or PING) last: proves the other end speaks Redis even without AUTH/SELECT.
    append({login.requireMaster ? "ROLE" : "PING"});
    loginSteps_.push_back(login.requireMaster ? "ROLE" : "PING");
    return {};
}

void Connection::append(const std::vector<std::string>& argv) {
    if (!c_) return;
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
        args.push_back(a.data());
        lens.push_back(a.size());
    }
    redisAppendCommandArgv(c_, static_cast<int>(args.size()), args.data(), lens.data());
}

short Connection::events() const {
    if (!c_) return 0;
    if (connecting_) return POLLOUT;
    return static_cast<short>(POLLIN | (c_->obuf && sdslen(c_->obuf) > 0 ? POLLOUT : 0));
}

Result<std::optional<Reply>> Connection::advance(short revents) {
    if (!c_) return fail(Errc::Unavailable, "not connected");
    if (connecting_) {
        if (revents == 0) return std::optional<Reply>();
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c_->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) return fail(Errc::Unavailable, errnoMessage("connect", err));
        connecting_ = false;
    }
    if (c_->obuf && sdslen(c_->obuf) > 0) {
        int done = 0;
        if (redisBufferWrite(c_, &done) == REDIS_ERR)
            return fail(Errc::Unavailable, std::string("write: ") + c_->errstr);
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (redisBufferRead(c_) == REDIS_ERR) {
            std::string why = c_->errstr;
            if (!loginSteps_.empty())
                why += " (during " + loginSteps_.front() + "; is this a Redis server?)";
            return fail(Errc::Unavailable, why);
        }
    }
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(c_->reader, &raw) != REDIS_OK)
            return fail(Errc::Refused, std::string("not a Redis server? ") + c_->reader->errstr);
        if (!raw) return std::optional<Reply>();
        Reply reply = convert(static_cast<redisReply*>(raw));
        freeReplyObject(raw);
        if (loginSteps_.empty()) {
            used_ = true;
            return std::optional<Reply>(std::move(reply));
        }
        std::string step = loginSteps_.front();
        loginSteps_.erase(loginSteps_.begin());
        if (reply.isError()) {
            if (step == "AUTH")
                return fail(Errc::Refused,
                            "login" + (user_.empty() ? std::string() : " as user '" + user_ + "'") +
                                " refused: " + reply.str);
            if (reply.errorIs("NOAUTH"))
                return fail(Errc::Refused, "the server wants a password (set password_file or "
                                           "password_credential): " +
                                               reply.str);
            return fail(Errc::Refused, step + " refused: " + reply.str);
        }
        if (step == "ROLE") {
            std::string role = !reply.elements.empty() ? reply.elements[0].str : "";
            if (requireMaster_ && role != "master")
                return fail(Errc::Unavailable, "is not a master (role '" + role +
                                                   "'): a failover is under way or the sentinel "
                                                   "is out of date");
        } else if (step == "PING" && !(reply.type == Reply::Type::Status && reply.str == "PONG")) {
            return fail(Errc::Refused, "unexpected answer to PING: not a Redis server?");
        }
    }
}

Result<std::vector<Result<Reply>>> waitEach(const std::vector<Connection*>& conns,
                                            TimePoint deadline, Interrupt& interrupt,
                                            const FollowUp& followUp) {
    std::vector<std::optional<Result<Reply>>> done(conns.size());
    auto finish = [&]() {
        std::vector<Result<Reply>> out;
        for (auto& d : done)
            out.push_back(std::move(*d));
        return out;
    };
    auto settle = [&](size_t i, short revents) {
        for (;;) {
            auto r = conns[i]->advance(revents);
            if (r && !*r) return; // nothing complete yet
            Result<Reply> outcome = r ? Result<Reply>(std::move(**r)) : Result<Reply>(r.error());
            if (followUp && followUp(i, outcome) && conns[i]->isOpen()) {
                revents = 0; // the follow-up may be answered from what is buffered already
                continue;
            }
            done[i] = std::move(outcome);
            return;
        }
    };
    for (size_t i = 0; i < conns.size(); ++i) {
        if (!conns[i]->isOpen())
            done[i] = Result<Reply>(makeError(
                Errc::Unavailable, "redis " + conns[i]->target().describe() + ": not connected"));
        else
            settle(i, 0); // a reply may be buffered already; queued output goes out now
    }
    for (;;) {
        std::vector<pollfd> fds;
        std::vector<size_t> which;
        for (size_t i = 0; i < conns.size(); ++i)
            if (!done[i]) {
                fds.push_back({conns[i]->fd(), conns[i]->events(), 0});
                which.push_back(i);
            }
        if (which.empty()) return finish();
        auto now = BootClock::now();
        TimePoint next = deadline;
        bool expired = false;
        for (size_t i : which) {
            TimePoint own =
                conns[i]->loggingIn() ? std::min(deadline, conns[i]->connectBy()) : deadline;
            if (now >= own) {
                std::string where = conns[i]->target().describe();
                bool connecting = conns[i]->loggingIn();
                conns[i]->close(); // a late reply would be taken for the next command's
                done[i] = Result<Reply>(makeError(
                    Errc::Unavailable,
                    "redis " + where + (connecting ? ": connect/login timed out" : ": timed out")));
                expired = true;
            }
            next = std::min(next, own);
        }
        if (expired) continue;
        if (auto r = interrupt.wait(fds, next, "redis"); !r) {
            for (size_t i : which)
                conns[i]->close();
            return r.error();
        }
        for (size_t k = 0; k < which.size(); ++k)
            if (fds[k].revents) settle(which[k], fds[k].revents);
    }
}

Result<Reply> waitReply(Connection& conn, TimePoint deadline, Interrupt& interrupt) {
    auto all = waitEach({&conn}, deadline, interrupt);
    if (!all) return all.error();
    return std::move((*all)[0]);
}

Result<Reply> call(Connection& conn, const std::vector<std::string>& argv, TimePoint deadline,
                   Interrupt& interrupt) {
    conn.append(argv);
    return waitReply(conn, deadline, interrupt);
}

} // namespace lockunit::redis
