// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

// The release marker (docs/backends/etcd.md, "Lock-delay"): a holder's release deletes its key
// KEY and puts KEY/released under its own lease in one txn, so that both land in one revision,
// one raft write; the revoke of the lease that follows removes the marker. A waiter tells a
// release from a lease that ended otherwise by the marker's PUT beside the key's deletion.
// Pure: no I/O.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/etcd/etcd_rpc.pb.h"

namespace lockunit::etcd {

// What a lockunit from before the marker writes into its key before it revokes the lease (and
// what the marker holds): such a deletion is a release too.
inline constexpr std::string_view kReleasedValue = "released\n";

// KEY/released, the marker of a release of KEY.
std::string markerKey(std::string_view key);

// Whether a key under the lock's prefix is a release marker rather than a queue key. Queue keys
// (lockunit's and `etcdctl lock`'s alike) are PREFIX NAME/<lease id in hex>: never one of these.
bool isMarker(std::string_view key);

// A queue key that a watch response reported deleted.
struct Deletion {
    std::string key;
    long long createRevision = 0;     // the deleted key's (0: etcd sent no previous value)
    std::optional<std::string> value; // its last value; none when etcd had compacted it away
    // Its holder released it: the key's marker was put in the revision that deleted it, or
    // (a lockunit from before the marker) its last value was kReleasedValue.
    bool released = false;
};

// The deletions of queue keys in one watch response of a watch with prev_kv, in order; markers,
// and every PUT, are not deletions of queue keys. etcd does not split one revision's events
// over several responses ("Atomic", in etcd's API documentation: "updates in the same revision
// over multiple keys will not be split over several lists of events"), as long as the watch
// does not ask for `fragment` (lockunit's never does): a release's deletion and its marker
// arrive in the same response.
std::vector<Deletion> deletions(const etcdpb::WatchResponse& response);

} // namespace lockunit::etcd
