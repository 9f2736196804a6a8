// SPDX-License-Identifier: LGPL-2.1-or-later
// The etcd release marker (etcd_release.hpp): which deletions a waiter's watch response shows
// as releases and which as a lock that ended otherwise (docs/backends/etcd.md, "Lock-delay").
#include <gtest/gtest.h>

#include "backends/etcd/etcd_release.hpp"

using namespace lockunit::etcd;
namespace pb = lockunit::etcdpb;

namespace {

const std::string kKey = "lockunit/jobs/694d8a1c2f3b";
const std::string kRecord = "id=h:1:x\nhost=h\nunit=\npid=1\nsince=\ntoken=42\nbudget_ms=9500\n";

// A DELETE event of `key` at `revision`, with the key's last value unless `value` is null.
void addDelete(pb::WatchResponse& r, const std::string& key, long long revision, const char* value,
               long long createRevision = 42) {
    pb::Event* e = r.add_events();
    e->set_type(pb::Event::DELETE);
    e->mutable_kv()->set_key(key);
    e->mutable_kv()->set_mod_revision(revision);
    if (!value) return;
    e->mutable_prev_kv()->set_key(key);
    e->mutable_prev_kv()->set_value(value);
    e->mutable_prev_kv()->set_create_revision(createRevision);
}

void addPut(pb::WatchResponse& r, const std::string& key, long long revision,
            const std::string& value) {
    pb::Event* e = r.add_events();
    e->set_type(pb::Event::PUT);
    e->mutable_kv()->set_key(key);
    e->mutable_kv()->set_mod_revision(revision);
    e->mutable_kv()->set_create_revision(revision);
    e->mutable_kv()->set_value(value);
}

} // namespace

TEST(EtcdRelease, MarkerKeysAreTheKeyWithReleasedAppended) {
    EXPECT_EQ(markerKey(kKey), kKey + "/released");
    EXPECT_TRUE(isMarker(markerKey(kKey)));
    EXPECT_FALSE(isMarker(kKey));
    EXPECT_FALSE(isMarker("x-jobs/694d8a1c2f3b"));    // etcdctl lock's keys
    EXPECT_FALSE(isMarker("lockunit/released/694d")); // a lock named "released"
}

TEST(EtcdRelease, ADeletionWithItsMarkerInTheSameRevisionIsARelease) {
    pb::WatchResponse r;
    addDelete(r, kKey, 100, kRecord.c_str());
    addPut(r, markerKey(kKey), 100, std::string(kReleasedValue));
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].key, kKey);
    EXPECT_EQ(gone[0].createRevision, 42);
    EXPECT_EQ(gone[0].value, kRecord);
    EXPECT_TRUE(gone[0].released);
}

TEST(EtcdRelease, ADeletionWithoutItsMarkerIsNoRelease) {
    // `etcdctl del`, `etcdctl lease revoke`, an expired lease: the key goes, no marker comes.
    pb::WatchResponse r;
    addDelete(r, kKey, 100, kRecord.c_str());
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_FALSE(gone[0].released);
    EXPECT_EQ(gone[0].value, kRecord);
}

TEST(EtcdRelease, AMarkerOfAnotherRevisionOrKeyDoesNotCount) {
    const std::string other = "lockunit/jobs/694d8a1c2f3c";
    pb::WatchResponse r;
    addPut(r, markerKey(kKey), 99, std::string(kReleasedValue));   // not the deleting revision
    addPut(r, markerKey(other), 100, std::string(kReleasedValue)); // another key's
    addDelete(r, kKey, 100, kRecord.c_str());
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_FALSE(gone[0].released);
}

TEST(EtcdRelease, AnOlderLockunitsReleasedValueIsARelease) {
    pb::WatchResponse r;
    addDelete(r, kKey, 100, std::string(kReleasedValue).c_str());
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_TRUE(gone[0].released);
}

TEST(EtcdRelease, WithoutAPreviousValueItCannotTell) {
    pb::WatchResponse r;
    addDelete(r, kKey, 100, nullptr); // compacted away
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_FALSE(gone[0].value.has_value());
    EXPECT_EQ(gone[0].createRevision, 0);
    EXPECT_FALSE(gone[0].released);
}

TEST(EtcdRelease, PutsAndTheMarkersOwnDeletionAreNoDeletionsOfQueueKeys) {
    pb::WatchResponse r;
    addPut(r, kKey, 101, kRecord);                                // a holder writes its record
    addPut(r, markerKey(kKey), 102, std::string(kReleasedValue)); // a marker alone
    addDelete(r, markerKey(kKey), 103, "released\n");             // the revoke removes it
    EXPECT_TRUE(deletions(r).empty());
}

TEST(EtcdRelease, SeveralRevisionsInOneResponseAreTakenApart) {
    // With holders > 1 the watch covers the whole prefix: a release and an unclean end can
    // arrive in one response.
    const std::string other = "lockunit/jobs/694d8a1c2f3c";
    pb::WatchResponse r;
    addDelete(r, kKey, 100, kRecord.c_str(), 40);
    addPut(r, markerKey(kKey), 100, std::string(kReleasedValue));
    addDelete(r, other, 101, kRecord.c_str(), 41);
    auto gone = deletions(r);
    ASSERT_EQ(gone.size(), 2u);
    EXPECT_TRUE(gone[0].released);
    EXPECT_EQ(gone[1].key, other);
    EXPECT_EQ(gone[1].createRevision, 41);
    EXPECT_FALSE(gone[1].released);
}
