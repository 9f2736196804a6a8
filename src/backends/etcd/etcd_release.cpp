// SPDX-License-Identifier: LGPL-2.1-or-later
#include "backends/etcd/etcd_release.hpp"

#include <set>
#include <utility>

namespace lockunit::etcd {

namespace {
constexpr std::string_view kMarkerSuffix = "/released";
}

std::string markerKey(std::string_view key) {
    return std::string(key) + std::string(kMarkerSuffix);
}

bool isMarker(std::string_view key) {
    return key.ends_with(kMarkerSuffix);
}

std::vector<Deletion> deletions(const etcdpb::WatchResponse& response) {
    // The markers this response saw put, with the revision that put them.
    std::set<std::pair<std::string, long long>> marked;
    for (const etcdpb::Event& e : response.events())
        if (e.type() == etcdpb::Event::PUT && isMarker(e.kv().key()))
            marked.emplace(e.kv().key(), e.kv().mod_revision());
    std::vector<Deletion> out;
    for (const etcdpb::Event& e : response.events()) {
        if (e.type() != etcdpb::Event::DELETE || isMarker(e.kv().key())) continue;
        Deletion d;
        d.key = e.kv().key();
        if (e.has_prev_kv()) {
            d.createRevision = e.prev_kv().create_revision();
            d.value = e.prev_kv().value();
        }
        // A DELETE event's kv carries the revision of the deletion as its mod_revision.
        d.released =
            marked.contains({markerKey(d.key), e.kv().mod_revision()}) || d.value == kReleasedValue;
        out.push_back(std::move(d));
    }
    return out;
}

} // namespace lockunit::etcd
