// SPDX-License-Identifier: LGPL-2.1-or-later
// The yardstick for lockunit's memory on the postgres backend (bench/postgres_handover): the
// least a program needs to hold one session advisory lock through libpq. It connects with a
// libpq connection string (argv[1]; the password from PGPASSWORD or a passfile), takes
// pg_advisory_lock(argv[2]), prints "locked", and waits for SIGTERM; its exit ends the session,
// which frees the lock. No renewal, no NOTIFY, no payload: a floor, not a rival.

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONNINFO KEY\n", argv[0]);
        return 64;
    }
    PGconn* conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        return 69;
    }
    const char* values[1] = {argv[2]};
    PGresult* r =
        PQexecParams(conn, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s", PQerrorMessage(conn));
        return 69;
    }
    PQclear(r);
    puts("locked");
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    PQfinish(conn);
    return 0;
}
