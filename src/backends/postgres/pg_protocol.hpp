// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// The pure parts of the postgres backend's protocol, kept apart so that unit tests can pin them:
// how a lock name becomes advisory-lock keys, the LISTEN channel, and the holder record that a
// holder publishes in its session's application_name.

#include <cstdint>
#include <string>

#include "backends/backend.hpp"

namespace lockunit::pg {

// FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over the bytes of
// `text`.
uint64_t fnv1a64(const std::string& text);

// The advisory-lock key of slot `slot` of lock `name`, as PostgreSQL's bigint (two's complement
// of the hash): FNV-1a-64 of "lockunit:NAME" for slot 0 and of "lockunit:NAME#SLOT" (decimal)
// for the other slots of a semaphore. '#' never occurs in a lock name, so no two (name, slot)
// pairs share an input.
int64_t advisoryKey(const std::string& name, int slot);

// How pg_locks shows a bigint advisory key: classid = high 32 bits, objid = low 32 bits,
// objsubid = 1.
uint32_t keyClassId(int64_t key);
uint32_t keyObjId(int64_t key);

// The LISTEN/NOTIFY channel of a lock: "lockunit_" + 16 lower-case hex digits of slot 0's hash
// (a plain identifier, 25 characters, well under the 63-byte limit).
std::string channelName(const std::string& name);

// The holder record squeezed into application_name (at most 63 bytes, printable ASCII):
//   "lockunit|TOKEN|SINCE|PID|BUDGET|HOST|UNIT"
// TOKEN and SINCE (Unix seconds) are empty until the lock is held; BUDGET is the holder's stop
// budget in milliseconds (HolderRecord::stopBudget), followed by "@UNTIL" (Unix seconds) while
// the holder sits out a lock-delay (`startsAt` > 0; HolderRecord::startsAt); HOST and UNIT are
// cut to fit and any byte that is not printable ASCII or is '|' becomes '?'.
std::string encodeApplicationName(const HolderRecord& self, const std::string& token, long since,
                                  long startsAt = 0);
// The reverse; false when `text` is not one of ours.
bool parseApplicationName(const std::string& text, HolderRecord& out);

inline constexpr size_t kApplicationNameMax = 63;

// What the lock's channel says about one slot, in the order the server committed it: a holder
// took it ("acquired|SLOT|BUDGET|ID", sent by the holder right after it got the lock), or its
// holder released it ("released|SLOT|ID", sent before the unlock, or by the lock guard's
// release mode once the holder's payload tree has ended). A waiter that gets a slot whose last
// event is "acquired" knows that holder's session ended without a release.
struct SlotEvent {
    int slot = 0;
    bool released = false;
    Duration budget{};  // "acquired": the holder's stop budget
    std::string holder; // the holder's id (LOCKUNIT_HOLDER)
};
std::string encodeEvent(const SlotEvent& e);
// The reverse; false when `payload` is not one of ours.
bool parseEvent(const std::string& payload, SlotEvent& out);

} // namespace lockunit::pg
