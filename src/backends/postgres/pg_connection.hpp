// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// One libpq session driven only through libpq's asynchronous API, so that every wait is a
// wait on PQsocket() through the Interrupt that ends at a deadline (docs/design.md,
// invariant 4). Blocking libpq calls (PQexec, PQconnectdb, …) are never used.

#include <libpq-fe.h>
#include <memory>
#include <optional>
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
    // The two halves of exec(), for a statement that may take long (a blocking lock request):
    // send() sends it (errors as exec()); answer() reads what the socket holds without waiting
    // and returns the statement's result (or error, as exec()) once it has all arrived.
    Result<void> send(const char* sql, const std::vector<std::string>& params, TimePoint deadline,
                      Interrupt& interrupt);
    std::optional<Result<ResultPtr>> answer();
    bool busy() const { return pending_; }

    // Reads what the server sent without waiting; false (and the session closed) when the
    // session is gone. NOTIFY payloads, here and in exec(), are kept for takeNotifications().
    Result<void> consume();
    // The payloads of the notifications read since the last call, oldest first.
    std::vector<std::string> takeNotifications() { return std::exchange(notifications_, {}); }
    // True when a notification was read that takeNotifications() has not returned yet (exec()
    // may read one with a statement's answer: the socket does not turn readable for it).
    bool notificationPending() const { return !notifications_.empty(); }

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
    void readNotifications();

    PGconn* conn_ = nullptr;
    bool pending_ = false;                   // a statement's results have not all been read yet
    ResultPtr answer_;                       // what answer() has collected of them so far
    std::vector<std::string> notifications_; // payloads not yet taken
    std::string target_, sqlState_;
};

// libpq's messages are multi-line and end in a newline: one line, no trailing blanks.
std::string oneLine(const char* message);

} // namespace lockunit::pg
