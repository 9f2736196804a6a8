// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The lock guard: see guard.hpp for what it is for, docs/design.md ("The lock guard") for the
// rules it keeps. This file has two halves: the guard's own loop (runGuard and what it calls),
// which runs in a forked copy of lockunit and makes only system calls on static buffers (no
// allocation, no lock, no C++ library call that could take one: lockunit may have had threads
// when it forked), and the Guard class, main's side of the socket.

#include "process/guard.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/io.hpp"
#include "util/log.hpp"

namespace lockunit {
namespace {

enum MsgType : int32_t {
    // main → guard
    kHold = 1, // SCM_RIGHTS: the held fds, then the handoff memfd if a = 1
    kSpawn,    // SCM_RIGHTS: a memfd with "path\0argv...\0\0env...\0\0";
               // b = stop signal, ns = stop timeout, ns2 = slack
    kSignal,   // a = signal, b = to the whole tree
    kStop,     // b = send the stop signal (0: systemd sends it; SIGKILL backstop only)
    kRecheck,  // the published stop time moved earlier
    kBye,      // main is done
    // guard → main
    kStarted = 101, // a = the payload's pid, or -errno
    kExited,        // a = its wait status
    kEmpty,         // no process of the tree is left
    kTookOver,      // main missed its stop time: the guard stopped the tree
};

struct Msg {
    int32_t type = 0;
    int32_t a = 0;
    int32_t b = 0;
    int32_t pad = 0;
    int64_t ns = 0;
    int64_t ns2 = 0;
};

// The page main and the guard share: the stop time main last confirmed.
struct Page {
    std::atomic<int64_t> stopAtNs;
};

constexpr int kMaxHeld = 8;
constexpr int64_t kNever = INT64_MAX;
constexpr int64_t kKillRepeatNs = 50'000'000; // SIGKILL again: reparented orphans come late

int64_t bootNs() {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t toNs(TimePoint t) {
    if (t == TimePoint::max()) return kNever;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// ---- the guard's side: system calls on static buffers only --------------------------------

struct GuardState {
    int sock = -1, exe = -1, sigfd = -1, timer = -1;
    int held[kMaxHeld] = {};
    int heldCount = 0;
    int handoff = -1;
    pid_t payload = -1;
    bool payloadExited = false;
    bool spawned = false;
    bool emptySent = false;
    bool mainGone = false;
    bool stopping = false;
    int stopSignal = SIGTERM;
    int64_t stopTimeoutNs = 0;
    int64_t slackNs = 0;
    int64_t killAtNs = kNever;
    char** argv = nullptr;
    char** envp = nullptr;
    Page* page = nullptr;
};

GuardState g;
alignas(16) char childStack[64 * 1024];
char* launchArgv[4096];
char* launchEnv[8192];
char* releaseEnv[8192];
char releaseFdVar[] = "LOCKUNIT_RELEASE_FD=3";
pid_t treePids[16384];
pid_t signalledPids[16384];
int signalledCount = 0;
char pathBuf[64];
char readBuf[16384];

void say(const char* text) {
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, text, std::strlen(text));
}

// "/proc/<pid>/task" and friends, without snprintf.
char* appendNumber(char* p, long v) {
    char digits[24];
    int n = 0;
    do
        digits[n++] = static_cast<char>('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

char* appendText(char* p, const char* s) {
    while (*s)
        *p++ = *s++;
    return p;
}

void sendToMain(int type, int a = 0) {
    if (g.mainGone) return;
    Msg m;
    m.type = type;
    m.a = a;
    if (::send(g.sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EPIPE) g.mainGone = true;
}

// Appends the children of every thread of `pid` to treePids[*count...].
void addChildrenOf(pid_t pid, int* count) {
    char* p = appendText(pathBuf, "/proc/");
    p = appendNumber(p, pid);
    p = appendText(p, "/task");
    *p = 0;
    int dir = ::open(pathBuf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    alignas(8) char dents[4096];
    long n;
    while ((n = ::syscall(SYS_getdents64, dir, dents, sizeof dents)) > 0) {
        for (long off = 0; off < n;) {
            auto* d = reinterpret_cast<dirent64*>(dents + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            char* q = appendText(p, "/");
            q = appendText(q, d->d_name);
            q = appendText(q, "/children");
            *q = 0;
            int fd = ::openat(AT_FDCWD, pathBuf, O_RDONLY | O_CLOEXEC);
            *p = 0;
            if (fd < 0) continue;
            ssize_t len = ::read(fd, readBuf, sizeof readBuf - 1);
            ::close(fd);
            if (len <= 0) continue;
            readBuf[len] = 0;
            long v = 0;
            bool in = false;
            for (char* c = readBuf;; ++c) {
                if (*c >= '0' && *c <= '9') {
                    v = v * 10 + (*c - '0');
                    in = true;
                } else {
                    if (in && *count < static_cast<int>(sizeof treePids / sizeof treePids[0]))
                        treePids[(*count)++] = static_cast<pid_t>(v);
                    v = 0;
                    in = false;
                    if (!*c) break;
                }
            }
        }
    }
    ::close(dir);
}

bool signalledAlready(pid_t pid) {
    for (int i = 0; i < signalledCount; ++i)
        if (signalledPids[i] == pid) return true;
    return false;
}

// Sends `sig` to every descendant of the guard, walking /proc/PID/task/TID/children down from
// the guard itself. As a subreaper the guard adopts every orphan of the tree, so a process that
// left its process group (setsid, a double fork) is still found. `once`: a process that got the
// signal from an earlier walk of this stop does not get it again; the walk repeats until it
// finds no process it has not signalled (children forked meanwhile).
void signalTree(int sig, bool once) {
    for (int round = 0; round < 16; ++round) {
        int count = 0;
        addChildrenOf(::getpid(), &count);
        for (int i = 0; i < count; ++i)
            addChildrenOf(treePids[i], &count);
        bool fresh = false;
        for (int i = 0; i < count; ++i) {
            if (once && signalledAlready(treePids[i])) continue;
            ::kill(treePids[i], sig);
            fresh = true;
            if (once && signalledCount < static_cast<int>(sizeof signalledPids / sizeof(pid_t)))
                signalledPids[signalledCount++] = treePids[i];
        }
        if (!once || !fresh) return;
    }
}

bool hasChildren() {
    siginfo_t info{};
    return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != ECHILD;
}

void beginStop(bool sendSignal, int64_t now) {
    if (g.stopping) return;
    g.stopping = true;
    signalledCount = 0;
    if (sendSignal) {
        signalTree(g.stopSignal, true);
        if (g.stopSignal != SIGCONT) signalTree(SIGCONT, false); // a stopped process cannot act
        g.killAtNs = now + g.stopTimeoutNs;
    } else {
        g.killAtNs = now + g.stopTimeoutNs; // systemd sent the stop signal now
    }
}

void reapAll() {
    int status = 0, payloadStatus = 0;
    bool payloadExited = false;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == g.payload && !g.payloadExited) {
            g.payloadExited = payloadExited = true;
            payloadStatus = status;
        }
    }
    // "Empty" before "exited": main, told that the payload exited, then knows whether anything
    // of the tree is left to stop, without another round trip.
    if (g.spawned && !g.emptySent && !hasChildren()) {
        g.emptySent = true;
        sendToMain(kEmpty);
    }
    if (payloadExited) sendToMain(kExited, payloadStatus);
}

void closeHeld() {
    for (int i = 0; i < g.heldCount; ++i)
        ::close(g.held[i]);
    g.heldCount = 0;
    if (g.handoff >= 0) ::close(g.handoff);
    g.handoff = -1;
}

// The tree is gone and main with it: free the lock. With a handoff, lockunit's own binary
// does it in release mode (fd 3: the handoff; the held fds stay open until it is done);
// without one, exiting closes the held fds, and that ends the lock.
[[noreturn]] void releaseAndExit() {
    if (g.handoff < 0 || g.exe < 0) ::_exit(0);
    say("<5>lockunit guard: the payload has ended; releasing the lock of the dead lockunit\n");
    // Move what the release needs to fds 3, 4, ... (via high numbers, so none overwrites
    // another), and close the rest.
    int high[kMaxHeld + 2];
    int n = 0;
    high[n++] = ::fcntl(g.handoff, F_DUPFD_CLOEXEC, 100);
    for (int i = 0; i < g.heldCount; ++i)
        high[n++] = ::fcntl(g.held[i], F_DUPFD_CLOEXEC, 100);
    int exe = ::fcntl(g.exe, F_DUPFD_CLOEXEC, 100);
    for (int i = 0; i < n; ++i)
        ::dup2(high[i], 3 + i); // dup2 clears FD_CLOEXEC: these survive the exec
    // Everything else, the high copies and exe included, closes at the exec.
    ::close_range(3 + n, ~0U, CLOSE_RANGE_CLOEXEC);
    int e = 0;
    for (char** v = g.envp; *v && e < 8190; ++v)
        if (std::strncmp(*v, "LOCKUNIT_RELEASE_FD=", 20) != 0) releaseEnv[e++] = *v;
    releaseEnv[e++] = releaseFdVar;
    releaseEnv[e] = nullptr;
    ::syscall(SYS_execveat, exe, "", g.argv, releaseEnv, AT_EMPTY_PATH);
    say("<3>lockunit guard: cannot run the release; the lock ends with its lease\n");
    ::_exit(1);
}

void spawn(int memfd, const Msg& m) {
    struct stat st {};
    void* map = MAP_FAILED;
    if (::fstat(memfd, &st) == 0 && st.st_size > 0)
        map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, memfd, 0);
    ::close(memfd);
    if (map == MAP_FAILED) {
        sendToMain(kStarted, -EINVAL);
        return;
    }
    char* p = static_cast<char*>(map);
    char* end = p + st.st_size;
    auto next = [&]() -> char* {
        char* s = p;
        while (p < end && *p)
            ++p;
        if (p < end) ++p;
        return s;
    };
    char* path = next();
    int a = 0, e = 0;
    while (p < end && *p && a < 4095)
        launchArgv[a++] = next();
    launchArgv[a] = nullptr;
    next();
    while (p < end && *p && e < 8191)
        launchEnv[e++] = next();
    launchEnv[e] = nullptr;

    g.stopSignal = m.b;
    g.stopTimeoutNs = m.ns;
    g.slackNs = m.ns2;
    pid_t pid = startPayloadChild(path, launchArgv, launchEnv, childStack, sizeof childStack);
    int err = errno;
    ::munmap(map, static_cast<size_t>(st.st_size));
    if (pid < 0) {
        sendToMain(kStarted, -err);
        return;
    }
    g.payload = pid;
    g.payloadExited = false;
    g.spawned = true;
    g.emptySent = false;
    sendToMain(kStarted, pid);
}

void handleMessage(const Msg& m, const int* fds, int nfds) {
    switch (m.type) {
    case kHold:
        closeHeld();
        for (int i = 0; i < nfds; ++i) {
            if (m.a && i == nfds - 1)
                g.handoff = fds[i];
            else if (g.heldCount < kMaxHeld)
                g.held[g.heldCount++] = fds[i];
            else
                ::close(fds[i]);
        }
        return;
    case kSpawn:
        if (nfds == 1 && !g.spawned) {
            spawn(fds[0], m);
            return;
        }
        sendToMain(kStarted, -EINVAL);
        break;
    case kSignal:
        if (m.b)
            signalTree(m.a, false);
        else if (g.payload > 0 && !g.payloadExited)
            ::kill(g.payload, m.a);
        break;
    case kStop:
        beginStop(m.b != 0, bootNs());
        break;
    case kBye:
        ::_exit(0);
    default:
        break;
    }
    for (int i = 0; i < nfds; ++i)
        ::close(fds[i]);
}

void readMessages() {
    for (;;) {
        Msg m;
        iovec iov{&m, sizeof m};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxHeld + 1))];
        msghdr h{};
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        h.msg_control = control;
        h.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(g.sock, &h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            g.mainGone = true;
            return;
        }
        if (n < 0) return;
        int fds[kMaxHeld + 1];
        int nfds = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            std::memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * static_cast<size_t>(count));
            nfds += count;
        }
        if (n == sizeof m) handleMessage(m, fds, nfds);
    }
}

void armTimer(int64_t at) {
    itimerspec spec{};
    if (at != kNever) {
        spec.it_value.tv_sec = at / 1'000'000'000;
        spec.it_value.tv_nsec = at % 1'000'000'000;
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    }
    ::timerfd_settime(g.timer, TFD_TIMER_ABSTIME, &spec, nullptr);
}

[[noreturn]] void runGuard() {
    ::prctl(PR_SET_NAME, "lockunit-guard");
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, nullptr); // SIGTERM, SIGINT, SIGHUP…: the guard acts on
                                             // its own rules only
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    g.sigfd = ::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    g.timer = ::timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g.sigfd < 0 || g.timer < 0) ::_exit(70); // main sees EOF and stops as on a loss

    for (;;) {
        const int64_t now = bootNs();
        const bool treeLeft = g.spawned && !g.emptySent;
        if (g.mainGone && !treeLeft) releaseAndExit();
        if (g.mainGone && !g.stopping) {
            say("<4>lockunit guard: lockunit's main process is gone; stopping the payload\n");
            beginStop(true, now);
        }
        const int64_t stopAt = g.page->stopAtNs.load();
        if (!g.stopping && treeLeft && stopAt != kNever && now >= stopAt + g.slackNs) {
            say("<3>lockunit guard: lockunit missed the lease's stop time; stopping the "
                "payload\n");
            beginStop(true, now);
            sendToMain(kTookOver);
        }
        if (g.stopping && treeLeft && now >= g.killAtNs) {
            signalTree(SIGKILL, false);
            g.killAtNs = now + kKillRepeatNs;
        }
        int64_t wake = kNever;
        if (g.stopping && treeLeft)
            wake = g.killAtNs;
        else if (treeLeft && stopAt != kNever)
            wake = stopAt + g.slackNs;
        armTimer(wake);

        pollfd fds[3] = {{g.mainGone ? -1 : g.sock, POLLIN, 0}, {g.sigfd, POLLIN, 0},
                         {g.timer, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0 && errno != EINTR) ::_exit(70);
        if (fds[0].revents) readMessages();
        if (fds[1].revents) {
            signalfd_siginfo info;
            while (::read(g.sigfd, &info, sizeof info) == sizeof info) {
            }
        }
        if (fds[2].revents) {
            uint64_t expirations;
            [[maybe_unused]] auto n = ::read(g.timer, &expirations, sizeof expirations);
        }
        reapAll();
    }
}

} // namespace

// ---- main's side -----------------------------------------------------------------------

Result<std::unique_ptr<Guard>> Guard::start(char** argv, char** envp) {
    void* page = ::mmap(nullptr, sizeof(Page), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    if (page == MAP_FAILED) return makeError(Errc::System, errnoMessage("mmap"));
    new (page) Page{};
    static_cast<Page*>(page)->stopAtNs.store(kNever);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        ::munmap(page, sizeof(Page));
        return makeError(Errc::System, errnoMessage("socketpair"));
    }
    // For the release mode: lockunit's own binary, even if its path is replaced meanwhile.
    int exe = ::open("/proc/self/exe", O_PATH | O_CLOEXEC);
    ChildReaper reaper;
    reaper.recordForeign(); // a shell's logger forked before us is not the payload's
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(pair[0]);
        ::close(pair[1]);
        if (exe >= 0) ::close(exe);
        ::munmap(page, sizeof(Page));
        errno = err;
        return makeError(Errc::System, errnoMessage("fork (lock guard)"));
    }
    if (pid == 0) {
        // Only what the guard needs stays open: stdin/out/err, its socket, the binary.
        int sock = ::fcntl(pair[1], F_DUPFD_CLOEXEC, 3);
        int self = exe >= 0 ? ::fcntl(exe, F_DUPFD_CLOEXEC, 3) : -1;
        g.sock = ::dup3(sock, 3, O_CLOEXEC) < 0 ? sock : 3;
        g.exe = self >= 0 && ::dup3(self, 4, O_CLOEXEC) >= 0 ? 4 : -1;
        ::close_range(g.exe >= 0 ? 5 : 4, ~0U, 0);
        g.argv = argv;
        g.envp = envp;
        g.page = static_cast<Page*>(page);
        runGuard();
    }
    ::close(pair[1]);
    if (exe >= 0) ::close(exe);
    auto guard = std::unique_ptr<Guard>(new Guard(pid, pair[0], page));
    guard->reaper_ = std::move(reaper);
    return guard;
}

Guard::~Guard() {
    ::munmap(page_, sizeof(Page));
}

bool Guard::send(int type, int a, int b, long long ns, long long ns2,
                 const std::vector<int>& fds) {
    if (!alive_) return false;
    Msg m;
    m.type = type;
    m.a = a;
    m.b = b;
    m.ns = ns;
    m.ns2 = ns2;
    iovec iov{&m, sizeof m};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxHeld + 1))] = {};
    if (!fds.empty()) {
        h.msg_control = control;
        h.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    if (::sendmsg(sock_.get(), &h, MSG_NOSIGNAL) < 0) {
        lostGuard();
        return false;
    }
    return true;
}

void Guard::process() {
    while (alive_) {
        Msg m;
        ssize_t n = ::recv(sock_.get(), &m, sizeof m, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            lostGuard();
            return;
        }
        if (n != sizeof m) continue;
        switch (m.type) {
        case kStarted:
            started_ = m.a;
            break;
        case kExited:
            mainExit_ = WIFSIGNALED(m.a) ? 128 + WTERMSIG(m.a) : WEXITSTATUS(m.a);
            break;
        case kEmpty:
            empty_ = true;
            break;
        case kTookOver:
            tookOver_ = true;
            break;
        default:
            break;
        }
    }
}

void Guard::lostGuard() {
    if (!alive_) return;
    alive_ = false;
    lost_ = true;
    sock_.reset();
    log::error("the lock guard (PID " + std::to_string(pid_) + ") is gone");
    reaper_.reap();
    // What the guard started is ours now (we are a subreaper too); a stop already under way
    // goes on with our own signals.
    if (stopping_) {
        signalLeftovers(stopSignal_);
        killAt_ = BootClock::now() + stopTimeout_;
    }
}

void Guard::hold(const std::vector<int>& fds, const std::string& handoff) {
    std::vector<int> all(fds.begin(), fds.begin() + std::min<size_t>(fds.size(), kMaxHeld));
    UniqueFd memfd;
    if (!handoff.empty()) {
        memfd.reset(::memfd_create("lockunit-handoff", MFD_CLOEXEC));
        if (memfd.valid() &&
            ::write(memfd.get(), handoff.data(), handoff.size()) ==
                static_cast<ssize_t>(handoff.size()))
            all.push_back(memfd.get());
        else
            log::warning("cannot hand the lock's identity to the lock guard: " +
                         errnoMessage("memfd") + "; a dead lockunit's lock ends with its lease");
    }
    send(kHold, all.size() > fds.size() ? 1 : 0, 0, 0, 0, all);
}

void Guard::publishStopAt(TimePoint stopAt) {
    auto* page = static_cast<Page*>(page_);
    const int64_t ns = toNs(stopAt);
    const int64_t old = page->stopAtNs.exchange(ns);
    if (ns < old) send(kRecheck); // the guard's timer is armed for the later time
}

Result<pid_t> Guard::spawn(const LaunchSpec& spec, Duration slack, Interrupt& interrupt,
                           TimePoint deadline) {
    stopSignal_ = spec.stopSignal;
    stopTimeout_ = spec.stopTimeout;
    std::string image = spec.path + '\0';
    for (const auto& a : spec.argv)
        image += a + '\0';
    image += '\0';
    for (const auto& e : spec.env)
        image += e + '\0';
    image += '\0';
    UniqueFd memfd(::memfd_create("lockunit-payload", MFD_CLOEXEC));
    if (!memfd.valid() || ::write(memfd.get(), image.data(), image.size()) !=
                              static_cast<ssize_t>(image.size()))
        return makeError(Errc::System, errnoMessage("memfd (payload)"));
    using std::chrono::nanoseconds;
    // Reset before asking: the payload's exit and "tree empty" may come in the same read as
    // the answer.
    started_.reset();
    spawned_ = false;
    empty_ = false;
    mainExit_.reset();
    if (!send(kSpawn, 0, spec.stopSignal,
              std::chrono::duration_cast<nanoseconds>(spec.stopTimeout).count(),
              std::chrono::duration_cast<nanoseconds>(slack).count(), {memfd.get()}))
        return makeError(Errc::Unavailable, "the lock guard is gone");
    while (!started_) {
        process();
        if (!alive_) return makeError(Errc::Unavailable, "the lock guard is gone");
        if (started_) break;
        if (auto r = io::waitFor(sock_.get(), POLLIN, deadline, interrupt, "starting the payload");
            !r)
            return r.error();
    }
    if (*started_ < 0) {
        errno = -*started_;
        return makeError(Errc::System, errnoMessage("starting the payload"));
    }
    payload_ = *started_;
    spawned_ = true;
    reaper_.setMain(payload_); // if the guard dies, the payload's exit comes to us
    return payload_;
}

void Guard::signalLeftovers(int sig) {
    if (payload_ > 0) ::kill(-payload_, sig);
    reaper_.signalChildren(sig); // descendants that left the group and were adopted by us
}

void Guard::signal(int sig, bool toAll) {
    if (send(kSignal, sig, toAll ? 1 : 0)) return;
    if (toAll)
        signalLeftovers(sig);
    else if (!mainExit())
        ::kill(payload_, sig);
}

void Guard::stop(bool sendSignal) {
    if (stopping_) return;
    stopping_ = true;
    if (alive_ && spawned_ && empty_) return; // nothing of the tree is left to stop
    if (send(kStop, 0, sendSignal ? 1 : 0)) return;
    signalLeftovers(stopSignal_);
    if (stopSignal_ != SIGCONT) signalLeftovers(SIGCONT);
    killAt_ = BootClock::now() + stopTimeout_;
}

void Guard::onTimeout(TimePoint now) {
    if (alive_ || !killAt_ || now < *killAt_) return;
    signalLeftovers(SIGKILL);
    killAt_ = now + std::chrono::milliseconds(50);
}

std::optional<int> Guard::mainExit() const {
    if (mainExit_ || alive_) return mainExit_;
    return reaper_.mainExit();
}

bool Guard::treeLeft() const {
    if (!spawned_ || finishedEmpty_) return false;
    if (alive_) return !empty_;
    return reaper_.childrenLeft() || (payload_ > 0 && ::kill(-payload_, 0) == 0);
}

void Guard::reap() {
    reaper_.reap();
}

void Guard::finish() {
    // Not waited for: it exits at once, and nothing needs its exit but the end of the scope
    // (scope mode), which the runner waits for. Reaped on SIGCHLD, or by init after us.
    finishedEmpty_ = alive_ && spawned_ && empty_;
    if (alive_) send(kBye);
    alive_ = false;
    sock_.reset();
}

std::optional<std::string> releaseHandoff() {
    const char* var = std::getenv("LOCKUNIT_RELEASE_FD");
    if (!var) return std::nullopt;
    int fd = std::atoi(var);
    std::string out;
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = ::pread(fd, buf, sizeof buf, off)) > 0) {
        out.append(buf, static_cast<size_t>(n));
        off += n;
    }
    ::close(fd);
    ::unsetenv("LOCKUNIT_RELEASE_FD");
    return out;
}

} // namespace lockunit
