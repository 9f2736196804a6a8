// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// A thin, never-blocking wrapper around one hiredis 0.14 context.
//
// hiredis 0.14's blocking calls can hang (redisConnectWithTimeout bounds only the connect) and
// cannot be interrupted, so this wrapper runs every context in non-blocking mode and does the
// waiting itself: Interrupt::wait() on the sockets, with a deadline. Every call
// therefore ends by its deadline (Errc::Unavailable, "timed out"), or on a stop request
// (Errc::Interrupted), or with the reply. After any failure the context is dropped: the next
// open() makes a new one and logs in again (AUTH with the ACL user, SELECT the database).

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/redis/redis_url.hpp"
#include "util/clock.hpp"
#include "util/result.hpp"

struct redisContext;

namespace lockunit::redis {

// One reply, copied out of hiredis's reply tree.
struct Reply {
    enum class Type { Nil, String, Status, Integer, Array, Error };
    Type type = Type::Nil;
    std::string str; // String, Status, Error
    long long integer = 0;
    std::vector<Reply> elements;

    bool isError() const { return type == Type::Error; }
    bool isNil() const { return type == Type::Nil; }
    // Error replies start with a code word: "NOSCRIPT No matching script", "READONLY …".
    bool errorIs(const char* code) const;
    // The integer of an Integer reply, or of a String that holds one; `fallback` otherwise.
    long long asInteger(long long fallback = 0) const;
};

// How to log in once connected. The password goes nowhere but into AUTH.
struct Login {
    std::string user;                    // ACL user; empty = the default user
    std::optional<std::string> password; // nullopt: no AUTH (unless a user is given)
    int db = 0;
    bool requireMaster = false; // fail unless ROLE says master (a master named by a sentinel)
};

class Connection {
public:
    Connection() = default;
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool isOpen() const { return c_ != nullptr; }
    int fd() const;
    const Target& target() const { return target_; }
    // True once this context has delivered a reply to a command of ours: a failure after that
    // may just mean the server restarted, and one retry on a new connection is worthwhile.
    bool used() const { return used_; }

    // Starts a non-blocking connect (resolving a host name first, bounded by the deadline) and
    // queues the login commands. The first wait for a reply completes the login; its failures
    // come back from there (Errc::Refused for a refused login or a server that is not Redis).
    // `connectBy` bounds the connect and the login; the wait for the first reply may be longer.
    Result<void> open(const Target& target, const Login& login, TimePoint connectBy,
                      Interrupt& interrupt);
    // Still connecting or logging in; until when that may take.
    bool loggingIn() const { return c_ && (connecting_ || !loginSteps_.empty()); }
    TimePoint connectBy() const { return connectBy_; }
    // Queues one command; its reply comes out of a later wait.
    void append(const std::vector<std::string>& argv);
    // Drops the context and whatever was queued on it.
    void close();

    // Poll plumbing, for waiting on several connections at once.
    short events() const;
    // Moves I/O forward after poll() reported `revents` (0: only parse what is buffered).
    // Returns a reply once one is complete. An error closes the connection.
    Result<std::optional<Reply>> advance(short revents);

private:
    Error fail(Errc code, const std::string& what);

    redisContext* c_ = nullptr;
    Target target_;
    bool connecting_ = false;
    bool used_ = false;
    bool requireMaster_ = false;
    std::string user_;
    std::vector<std::string> loginSteps_; // login commands still to be answered, oldest first
    TimePoint connectBy_{};
};

// Sends what is queued on `conn` and waits for one reply.
Result<Reply> waitReply(Connection& conn, TimePoint deadline, Interrupt& interrupt);
// append() + waitReply().
Result<Reply> call(Connection& conn, const std::vector<std::string>& argv, TimePoint deadline,
                   Interrupt& interrupt);
// Sees each connection's outcome as it arrives; returning true means it has queued another
// command on that connection (reopening it if needed), whose reply is then waited for instead.
using FollowUp = std::function<bool(size_t index, const Result<Reply>& outcome)>;

// Waits for one reply from each connection at once (Redlock asks all nodes in parallel). The
// outer Result fails only on a stop request; each node's own outcome is in the vector. A
// connection that is not open yields Errc::Unavailable for its slot.
Result<std::vector<Result<Reply>>> waitEach(const std::vector<Connection*>& conns,
                                            TimePoint deadline, Interrupt& interrupt,
                                            const FollowUp& followUp = {});

} // namespace lockunit::redis
