// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// One libpq session driven only through libpq's asynchronous API, so that every wait is a
// poll() on PQsocket() that also watches the Interrupt and ends at a deadline (docs/design.md,
// invariant 4). Blocking libpq calls (PQexec, PQconnectdb, …) are never used.

#include <libpq-fe.h>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.hpp"
#include "util/clock.hpp"

namespace lockunit::pg {

struct ResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

using ConnParams = std::vector<std::pair<std::string, std::string>>;

class Connection {
public:
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { close(); }

    // Opens a session with these libpq keywords (PQconnectStartParams + PQconnectPoll).
    // Errors: Unavailable (refused, unreachable, authentication failed, timed out — the
    // message is libpq's, on one line), Interrupted.
    Result<void> connect(const ConnParams& params, TimePoint deadline, Interrupt& interrupt);

    // Runs one statement with text parameters and returns its result.
    // Errors: Unavailable with connected() == false: the session is gone (closed here);
    //         Unavailable with connected() == true: timed out, the statement is still in flight
    //         and is drained (or the session closed) before the next one;
    //         Refused: the server answered with an error (sqlState() tells which);
    //         Interrupted: as for a timeout.
    Result<ResultPtr> exec(const char* sql, const std::vector<std::string>& params,
                           TimePoint deadline, Interrupt& interrupt);

    // Reads what the server sent without waiting, and discards NOTIFY messages. Returns the
    // number of notifications seen since the last consume() (also those that exec() read
    // together with a statement's answer); false (and the session closed) when the session
    // is gone.
    Result<int> consume();
    // True when exec() read a notification that consume() has not reported yet: the socket
    // will not turn readable for it, libpq has already read it.
    bool notificationPending() const { return notified_ > 0; }

    bool connected() const { return conn_ != nullptr; }
    int socket() const { return conn_ ? PQsocket(conn_) : -1; }
    // The server process serving this session (pg_backend_pid()), 0 when not connected.
    int backendPid() const { return conn_ ? PQbackendPID(conn_) : 0; }
    // "HOST:PORT/DBNAME" of the server, for messages (never the password).
    const std::string& target() const { return target_; }
    const std::string& sqlState() const { return sqlState_; }
    void close();

private:
    Result<void> drain(TimePoint deadline, Interrupt& interrupt);
    Error lost(const std::string& what);
    void countNotifications();

    PGconn* conn_ = nullptr;
    bool pending_ = false; // a statement's results have not all been read yet
    int notified_ = 0;     // notifications read and not yet reported by consume()
    std::string target_, sqlState_;
};

// libpq's messages are multi-line and end in a newline: one line, no trailing blanks.
std::string oneLine(const char* message);

} // namespace lockunit::pg
