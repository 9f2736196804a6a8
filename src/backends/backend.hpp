// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/clock.hpp"
#include "util/duration.hpp"
#include "util/interrupt.hpp"
#include "util/result.hpp"

namespace lockunit {

class BackendSettings;

// Who holds a lock, as far as a backend can tell. Written by the holder when it acquires, read
// by waiters for their STATUS line and by `lockunit status`.
struct HolderRecord {
    std::string id;    // this holder's id (LOCKUNIT_HOLDER): "HOST:PID:RANDOM"
    std::string host;  // hostname
    std::string unit;  // systemd unit, empty outside systemd
    long pid = 0;      // lockunit's pid on that host
    std::string since; // wall time of acquisition, "2026-11-26T04:08:47Z"
    std::string token; // fencing token, empty where the backend has none
    // How long this holder's payload may still run once its lock ends without a release (a
    // session the server terminated, a key it dropped): its stop_timeout + margin. A waiter
    // that takes over such a lock waits this long first (the lock-delay). Zero: unknown.
    Duration stopBudget{};
    // Set while this holder sits out a lock-delay: the wall time ("2026-11-26T04:08:52Z") at
    // which its payload starts. Empty otherwise (and where the backend does not publish it).
    std::string startsAt;

    // "HOST/UNIT since TIME" (or "HOST pid PID since TIME"), for STATUS lines.
    std::string describe() const;
    // A small line-based "key=value" text, the form the file and Redis backends store.
    std::string serialize() const;
    static HolderRecord parse(const std::string& text);
};

// The result of a successful acquire or renew.
struct Lease {
    Lease() = default;
    Lease(Duration validity_, std::string token_, std::string warning_ = {})
        : validity(validity_), token(std::move(token_)), warning(std::move(warning_)) {}

    // How long the lease stays valid, counted from the moment the acquire/renew call *began*
    // (not when its answer arrived): the supervisor turns it into a local deadline on
    // CLOCK_BOOTTIME. kInfinity for locks that cannot expire on their own (a local flock).
    // A backend may report what an earlier request, sent before the call, proved (etcd's
    // waiter does, for the keepalive it sent while waiting): then the validity is shorter
    // than the ttl by the time since that request was sent, never more than was proven, and
    // the supervisor schedules the next renewal from that request.
    Duration validity = kInfinity;
    // Fencing token, strictly increasing per lock name; empty where the backend has none.
    std::string token;
    // The lock-delay (docs/guarantees.md, "Lock-delay"): when the previous holder's session or
    // key ended without a release, its payload may still be stopping. The supervisor holds the
    // lock (renewing it) for this long, counted from the call's return, before it starts the
    // payload; delayReason says why ("HOLDER's session ended without a release"). Zero after a
    // clean release, and where the backend cannot tell (its docs say when).
    Duration delay{};
    std::string delayReason;
    // Something the operator should hear about although the call worked (why there is no
    // fencing token, say); the supervisor logs it as a warning. Empty: nothing to say.
    std::string warning;
};

// The lock-delay's one rule, for every backend that can tell a release from an unclean end:
// the lock is ours, but the WHAT ("session", "lease", "key") of `previous`, a holder this waiter
// saw, ended without a release, so its payload may be stopping for up to its stop budget. Sets
// lease.delay to the longest such budget seen (a record without one, from an older lockunit or
// another program, adds nothing) and lease.delayReason; the supervisor does the waiting.
void addLockDelay(Lease& lease, const std::string& what, const std::string& previous,
                  Duration budget);

// How far the lock service's clock may run ahead of ours over a lease of this ttl: 1 % of the
// ttl plus 2 ms (docs/design.md, invariant 1). The supervisor's deadline for a lease is its
// validity less this; Redlock's validity and the Redis waiter's young-server wait count it too.
inline Duration clockDrift(Duration ttl) {
    return ttl / 100 + std::chrono::milliseconds(2);
}

// What `lockunit status` and the waiting STATUS line show.
struct LockState {
    std::vector<HolderRecord> holders; // empty: free (or the backend cannot tell)
    std::optional<Duration> leaseLeft; // time left on the current holder's lease, if known;
                                       // kInfinity: lasts as long as the holder (file)
    std::optional<int> waiters;        // waiting instances, where the backend can count them
    std::string notGranted; // why a free lock is granted to nobody yet, and until when (a
                            // young server: LockBackend::waitReason()); empty otherwise
};

// What a backend is created from: the validated URL and settings, the lock's name and budget.
struct BackendParams {
    std::string url;    // as configured, e.g. "redis://10.0.0.5:6379/2"
    std::string scheme; // "redis"
    std::string rest;   // everything after "scheme://"
    std::string lockName;
    Duration ttl{};
    Duration renew{};
    int holders = 1; // semaphore size; 1 = a mutex
    // renew + stop_timeout + safety margin: the deadline rule needs every lease to be longer.
    // A backend whose server may shorten the ttl (a ZooKeeper session timeout) checks what it
    // got against it. Zero: unknown (no check).
    Duration deadlineBudget{};
    HolderRecord self;
    const BackendSettings* settings = nullptr; // this backend's config table, validated
    // Release mode (`lockunit` run by the lock guard after the main process died): the
    // handoff() of the holder whose lock release() must free. Empty in every other mode.
    std::string adopt;
};

// The stop budget a holder's record carries on a backend where the holder learns that its lock
// ended behind its back (a revoked lease, a deleted key) only at its next renewal: up to `renew`
// later, and then its payload takes up to its stop budget to stop.
inline Duration noticedAtRenewal(const BackendParams& p) {
    return p.self.stopBudget > Duration::zero() ? p.self.stopBudget + p.renew : Duration::zero();
}

// The contract every backend keeps.
//
// - tryAcquire() makes one bounded attempt. On success the lock (or one of `holders` slots) is
//   ours and the Lease says for how long; Errc::Busy means someone else holds it; any other
//   error means the attempt failed and nothing is held (a backend that cannot tell whether its
//   request took effect undoes it on a best-effort basis before returning).
// - renew() extends our lease. Errc::Lost: the backend says the lease is not ours any more.
//   Errc::Unavailable / Interrupted: unknown; the supervisor keeps its old deadline and retries.
// - release() gives the lock up; called only after the payload is dead. Idempotent.
// - inspect() tells who holds the lock without taking it.
// - While waiting, the supervisor polls wakeFd() (readable when the lock may have become free;
//   -1 if the backend has no such event) and retries at least every retryInterval().
// - While holding, the supervisor polls watchFd() (readable when the lease may have ended, such
//   as a server closing the session; -1 if the backend has no such event) and then renews at
//   once instead of waiting for the next scheduled renewal.
// - heldFds() and handoff() serve the lock guard (docs/design.md, "The lock guard"), a process
//   that outlives lockunit's main process: it keeps a duplicate of every heldFds() fd open
//   until the payload's whole tree has exited (a lock that ends when its fd or session closes,
//   such as a flock or a postgres session, cannot pass before that), and then, if handoff() is
//   not empty, runs lockunit in release mode, where a backend created with params.adopt =
//   handoff() frees exactly that holder's key, lease or slot in release(), and nothing else.
// Every call is bounded in time (a timeout well under the renew interval) and polls the
// Interrupt in every wait. Backends do not log above debug: they return errors with context.
class LockBackend {
public:
    virtual ~LockBackend() = default;

    virtual Result<Lease> tryAcquire(Interrupt& interrupt) = 0;
    virtual Result<Lease> renew(Interrupt& interrupt) = 0;
    virtual Result<void> release(Interrupt& interrupt) = 0;
    virtual Result<LockState> inspect(Interrupt& interrupt) = 0;

    // For the lock guard, valid while the lock is held (see above).
    virtual std::vector<int> heldFds() const { return {}; }
    virtual std::string handoff() const { return {}; }

    // After tryAcquire() returned Errc::Busy: why the lock cannot be had when that is not
    // "someone holds it" (a server too young to grant, say), ending in when that ends; empty
    // otherwise. The supervisor names it in the log, in STATUS= and when it gives up.
    virtual std::string waitReason() const { return {}; }

    virtual int wakeFd() const { return -1; }
    virtual void drainWake() {}
    virtual int watchFd() const { return -1; }
    virtual Duration retryInterval() const = 0;
};

} // namespace lockunit
