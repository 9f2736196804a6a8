// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "systemd/notify_relay.hpp"

using namespace lockunit;

TEST(NotifyRelay, PassesOnReadyStatusAndExtendOnly) {
    auto n = parseNotification("READY=1\nSTATUS=serving 3 queues\nMAINPID=99\nWATCHDOG=1");
    EXPECT_TRUE(n.ready);
    ASSERT_TRUE(n.status);
    EXPECT_EQ(*n.status, "serving 3 queues");
    EXPECT_FALSE(n.extendTimeoutUsec);
    auto m = parseNotification("EXTEND_TIMEOUT_USEC=5000000\nREADY=0");
    EXPECT_FALSE(m.ready);
    EXPECT_FALSE(m.status);
    EXPECT_EQ(*m.extendTimeoutUsec, "5000000");
}

TEST(NotifyRelay, ReceivesWhatThePayloadSends) {
    auto relay = NotifyRelay::create();
    ASSERT_TRUE(relay) << relay.error().message;
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, (*relay)->path().c_str(), sizeof addr.sun_path - 1);
    const char msg[] = "READY=1";
    ASSERT_EQ(::sendto(fd, msg, sizeof msg - 1, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr),
              static_cast<ssize_t>(sizeof msg - 1));
    ::close(fd);
    auto got = (*relay)->drain();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], "READY=1");
    std::string path = (*relay)->path();
    relay->reset();
    EXPECT_NE(::access(path.c_str(), F_OK), 0); // removed with the relay
}
