// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/postgres/pg_connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <utility>

#include "backends/io.hpp"

namespace lockunit::pg {

namespace {

// libpq prints NOTICE and WARNING messages on stderr by default; a backend does not log.
void ignoreNotice(void*, const char*) {}

} // namespace

std::string oneLine(const char* message) {
    std::string out;
    bool space = false;
    for (const char* p = message ? message : ""; *p; ++p) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += *p;
    }
    return out;
}

void Connection::close() {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
    pending_ = false;
    answer_.reset();
    notifications_.clear();
}

void Connection::readNotifications() {
    while (PGnotify* n = PQnotifies(conn_)) {
        notifications_.emplace_back(n->extra ? n->extra : "");
        PQfreemem(n);
    }
}

Error Connection::lost(const std::string& what) {
    std::string msg = conn_ ? oneLine(PQerrorMessage(conn_)) : std::string();
    close();
    return makeError(Errc::Unavailable, "connection to PostgreSQL at " + target_ + " lost during " +
                                            what + (msg.empty() ? "" : ": " + msg));
}

Result<void> Connection::connect(const ConnParams& params, TimePoint deadline,
                                 Interrupt& interrupt) {
    close();
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : params) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectStartParams(keys.data(), values.data(), 0);
    if (!conn_) return makeError(Errc::System, "libpq: out of memory");
    PQsetNoticeProcessor(conn_, ignoreNotice, nullptr);
    auto describe = [this] {
        const char* host = PQhost(conn_);
        const char* port = PQport(conn_);
        const char* db = PQdb(conn_);
        std::string h = host && *host ? host : "localhost";
        if (h.find(':') != std::string::npos && h[0] != '/') h = "[" + h + "]";
        target_ = h + ":" + (port && *port ? port : "5432") + "/" + (db ? db : "");
    };
    describe();
    if (PQstatus(conn_) == CONNECTION_BAD) {
        std::string msg = oneLine(PQerrorMessage(conn_));
        close();
        return makeError(Errc::Unavailable,
                         "cannot connect to PostgreSQL at " + target_ + ": " + msg);
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            describe();
            std::string msg = oneLine(PQerrorMessage(conn_));
            close();
            return makeError(Errc::Unavailable,
                             "cannot connect to PostgreSQL at " + target_ + ": " + msg);
        }
        // The socket can change between attempts (several hosts, IPv4/IPv6 addresses).
        auto w = io::waitFor(PQsocket(conn_), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                             deadline, interrupt, "connect");
        if (!w) {
            describe();
            close();
            if (w.error().code == Errc::Interrupted) return w.error();
            return makeError(Errc::Unavailable, "cannot connect to PostgreSQL at " + target_ +
                                                    ": no answer within connect_timeout");
        }
        st = PQconnectPoll(conn_);
    }
    describe();
    if (PQsetnonblocking(conn_, 1) != 0) return lost("setup");
    // libpq sets FD_CLOEXEC itself; make sure, the payload must never inherit the session.
    int fd = PQsocket(conn_);
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return {};
}

Result<void> Connection::drain(TimePoint deadline, Interrupt& interrupt) {
    while (pending_) {
        if (!PQconsumeInput(conn_)) return lost("a previous statement");
        while (!PQisBusy(conn_)) {
            ResultPtr r(PQgetResult(conn_));
            if (!r) {
                pending_ = false;
                return {};
            }
        }
        auto w = io::waitFor(PQsocket(conn_), POLLIN, deadline, interrupt, "finishing a statement");
        if (!w) return w.error();
    }
    return {};
}

Result<void> Connection::consume() {
    if (!conn_) return makeError(Errc::Unavailable, "not connected");
    if (!PQconsumeInput(conn_) || PQstatus(conn_) == CONNECTION_BAD) return lost("idle");
    readNotifications();
    return {};
}

Result<void> Connection::send(const char* sql, const std::vector<std::string>& params,
                              TimePoint deadline, Interrupt& interrupt) {
    sqlState_.clear();
    if (!conn_) return makeError(Errc::Unavailable, "not connected to PostgreSQL");
    if (auto d = drain(deadline, interrupt); !d) return d.error();
    std::vector<const char*> values;
    for (const auto& p : params)
        values.push_back(p.c_str());
    if (!PQsendQueryParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                           nullptr, nullptr, 0))
        return lost("a statement");
    pending_ = true;
    answer_.reset();
    for (;;) {
        int f = PQflush(conn_);
        if (f == 0) return {};
        if (f < 0) return lost("sending a statement");
        auto w = io::waitFor(PQsocket(conn_), POLLIN | POLLOUT, deadline, interrupt,
                             "sending a statement");
        if (!w) return w.error();
        if (!PQconsumeInput(conn_)) return lost("sending a statement");
    }
}

std::optional<Result<ResultPtr>> Connection::answer() {
    if (!conn_) return Result<ResultPtr>(makeError(Errc::Unavailable, "not connected"));
    if (!PQconsumeInput(conn_)) return Result<ResultPtr>(lost("a statement"));
    auto ok = [](const PGresult* r) {
        auto st = PQresultStatus(r);
        return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
    };
    while (!PQisBusy(conn_)) {
        ResultPtr r(PQgetResult(conn_));
        if (r) {
            // Keep the first answer, or the first error after it.
            if (!answer_ || (!ok(r.get()) && ok(answer_.get()))) answer_ = std::move(r);
            continue;
        }
        pending_ = false;
        if (PQstatus(conn_) == CONNECTION_BAD) return Result<ResultPtr>(lost("a statement"));
        readNotifications(); // read with the answer: see notificationPending()
        ResultPtr got = std::move(answer_);
        if (!got) return Result<ResultPtr>(makeError(Errc::Refused, "PostgreSQL sent no result"));
        if (ok(got.get())) return Result<ResultPtr>(std::move(got));
        const char* state = PQresultErrorField(got.get(), PG_DIAG_SQLSTATE);
        sqlState_ = state ? state : "";
        return Result<ResultPtr>(makeError(
            Errc::Refused, oneLine(PQresultErrorMessage(got.get())) +
                               (sqlState_.empty() ? "" : " (SQLSTATE " + sqlState_ + ")")));
    }
    return std::nullopt;
}

Result<ResultPtr> Connection::exec(const char* sql, const std::vector<std::string>& params,
                                   TimePoint deadline, Interrupt& interrupt) {
    if (auto s = send(sql, params, deadline, interrupt); !s) return s.error();
    for (;;) {
        if (auto a = answer()) return std::move(*a);
        auto w =
            io::waitFor(PQsocket(conn_), POLLIN, deadline, interrupt, "waiting for PostgreSQL");
        if (!w) return w.error();
    }
}

} // namespace lockunit::pg
