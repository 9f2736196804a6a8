// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.hpp"

typedef struct _zhandle zhandle_t;

namespace lockunit::zk {

// What a zookeeper:// URL says: "host1:2181,host2:2181/chroot".
struct ZkUrl {
    std::string hosts;  // "host1:2181,host2:2181", every host with its port
    std::string chroot; // "" or "/chroot", without a trailing '/'
};

inline constexpr int kDefaultPort = 2181;

// Errors are Errc::Config.
Result<ZkUrl> parseUrl(const std::string& rest);

// The answer to one request: the ZooKeeper return code and what came with it.
struct Reply {
    int rc = 0;
    std::string path;                  // create: the node created
    std::string data;                  // get
    std::vector<std::string> children; // get_children
    long long czxid = 0;               // create, exists, get: the node's Stat
    int version = 0;
};

struct Pending;

// One ZooKeeper session over the single-threaded C client, driven only from inside the calls
// below: each waits with zookeeper_interest()/zookeeper_process() on the client's socket, the
// Interrupt and a deadline, so there is no client thread and nothing happens between calls
// (the client's pings and reconnects included). A CONNECTION_LOSS is the client's business:
// it reconnects to the next host with the same session while we keep waiting. A session that
// ended (expired, auth failed) stays ended: the owner makes a new one.
class Session {
public:
    Session(ZkUrl url, Duration timeout, std::optional<std::string> digest);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Creates the handle and waits for the handshake (and the digest auth). The negotiated
    // session timeout is then timeout().
    Result<void> connect(TimePoint deadline, Interrupt& interrupt);
    bool ended() const { return ended_; }
    Duration timeout() const;

    // One request, waited for. Every ZooKeeper error comes back as Reply::rc; only our own
    // wait (timed out, interrupted) or the session's end is an Error.
    // Create makes a persistent node, CreateSequential an ephemeral sequential one.
    enum class Op {
        Create,
        CreateSequential,
        Delete,
        Exists,
        WatchExists,
        Get,
        Children,
        WatchChildren
    };
    Result<Reply> call(Op op, const std::string& path, TimePoint deadline, Interrupt& interrupt,
                       const std::string& data = {}, int version = -1);

    // The socket (readable when the server sent something: a watch event, a ping's answer, its
    // close); -1 when not connected.
    int fd() const { return fd_; }
    // Reads what arrived without waiting; true if a watch fired since the last call.
    bool pump();
    // Sends the client's ping if it is due and waits for its answer (or the deadline).
    void keepAlive(TimePoint deadline, Interrupt& interrupt);
    // When the client's next ping is due: a waiter that does nothing else calls keepAlive()
    // then, so that the ping's answer does not arrive as a wake.
    TimePoint nextPing() const { return nextPing_; }

private:
    static void onEvent(zhandle_t*, int type, int state, const char* path, void* ctx);
    static void onLog(const char* message);
    Result<void> driveUntil(const bool& done, TimePoint deadline, Interrupt& interrupt,
                            const std::string& what);
    // One round of the client: its interest, a wait until `until`, its processing.
    // True if it read from the socket.
    Result<bool> step(TimePoint until, Interrupt& interrupt, const std::string& what);
    Error endedError() const;

    ZkUrl url_;
    Duration requested_;
    std::optional<std::string> digest_; // "user:password"
    zhandle_t* zh_ = nullptr;
    int fd_ = -1;
    int state_ = 0;
    bool ended_ = false;
    bool watchFired_ = false;
    bool handshakeSent_ = false; // a server accepted the connection (and got our handshake)
    TimePoint nextPing_{};
    std::list<std::unique_ptr<Pending>> pending_;
};

} // namespace lockunit::zk
