// SPDX-License-Identifier: LGPL-2.1-or-later
#include <cerrno>
#include <gtest/gtest.h>

#include "util/result.hpp"
#include "util/text.hpp"

using namespace lockunit;
using Pieces = std::vector<std::string_view>;

TEST(Split, ReturnsThePiecesBetweenTheSeparators) {
    EXPECT_EQ(split("a,b,c", ','), (Pieces{"a", "b", "c"}));
    EXPECT_EQ(split("/usr/bin:/bin", ':'), (Pieces{"/usr/bin", "/bin"}));
}

TEST(Split, ReturnsATextWithoutSeparatorWhole) {
    EXPECT_EQ(split("redis", ','), (Pieces{"redis"}));
}

TEST(Split, KeepsEveryEmptyPiece) {
    EXPECT_EQ(split("", ','), (Pieces{""}));
    EXPECT_EQ(split(",", ','), (Pieces{"", ""}));
    EXPECT_EQ(split("a,", ','), (Pieces{"a", ""}));
    EXPECT_EQ(split(",a", ','), (Pieces{"", "a"}));
    EXPECT_EQ(split("a,,b", ','), (Pieces{"a", "", "b"}));
}

TEST(Split, PointsIntoTheText) {
    std::string text = "one;two";
    auto pieces = split(text, ';');
    ASSERT_EQ(pieces.size(), 2u);
    EXPECT_EQ(pieces[1].data(), text.data() + 4);
}

TEST(SplitTerminated, DropsOnlyTheEmptyPieceAfterALastSeparator) {
    EXPECT_EQ(splitTerminated("a\nb\n", '\n'), (Pieces{"a", "b"}));
    EXPECT_EQ(splitTerminated("a\nb", '\n'), (Pieces{"a", "b"}));
    EXPECT_EQ(splitTerminated("a\n\nb", '\n'), (Pieces{"a", "", "b"}));
    EXPECT_EQ(splitTerminated("a\n\n", '\n'), (Pieces{"a", ""}));
    EXPECT_EQ(splitTerminated("\na", '\n'), (Pieces{"", "a"}));
}

TEST(SplitTerminated, FindsNoPieceInAnEmptyText) {
    EXPECT_EQ(splitTerminated("", '&'), Pieces{});
    EXPECT_EQ(splitTerminated("&", '&'), (Pieces{""}));
}

TEST(ErrnoMessage, NamesTheCallAndErrno) {
    errno = ENOENT;
    EXPECT_EQ(errnoMessage("open '/x'"), "open '/x': No such file or directory");
}

TEST(ErrnoMessage, TakesAnErrorCodeGivenByTheCall) {
    errno = 0;
    EXPECT_EQ(errnoMessage("connect", ECONNREFUSED), "connect: Connection refused");
    EXPECT_EQ(errnoMessage("", EPERM), ": Operation not permitted");
}
