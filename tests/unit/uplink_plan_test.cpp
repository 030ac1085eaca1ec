// Table test: no data-mode piece ever contains "+++" or ends in '+', and nothing is lost or reordered.
#include "modem/uplink_plan.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace slmd::modem;
using Kind = UplinkPiece::Kind;

TEST(UplinkPlan, Table) {
    struct Case {
        std::string input;
        std::vector<UplinkPiece> pieces;
        std::string tail;
    };
    const Case cases[] = {
        {"hello", {{Kind::data_mode, "hello"}}, ""},
        {"", {}, ""},
        {"a+b++c", {{Kind::data_mode, "a+b++c"}}, ""},
        {"hello+++", {{Kind::data_mode, "hello"}, {Kind::quoted, "+++"}}, ""},
        {"+++", {{Kind::quoted, "+++"}}, ""},
        {"x++++y", {{Kind::data_mode, "x"}, {Kind::quoted, "++++"}, {Kind::data_mode, "y"}}, ""},
        {"abc+", {{Kind::data_mode, "abc"}}, "+"},
        {"abc++", {{Kind::data_mode, "abc"}}, "++"},
        {"++", {}, "++"},
        {"a+++b+++c+", {{Kind::data_mode, "a"}, {Kind::quoted, "+++"}, {Kind::data_mode, "b"},
                        {Kind::quoted, "+++"}, {Kind::data_mode, "c"}}, "+"},
        {std::string("\0+\r\n\"+", 6), {{Kind::data_mode, std::string("\0+\r\n\"", 5)}}, "+"},
    };
    for (const auto& c : cases) {
        auto plan = plan_uplink(c.input, 1024);
        EXPECT_EQ(plan.pieces, c.pieces) << c.input;
        EXPECT_EQ(plan.held_tail, c.tail) << c.input;
    }
}

TEST(UplinkPlan, LongRunsSplitAtTheQuotedLimit) {
    auto plan = plan_uplink(std::string(2500, '+'), 1024);
    ASSERT_EQ(plan.pieces.size(), 3u);
    EXPECT_EQ(plan.pieces[0], (UplinkPiece{Kind::quoted, std::string(1024, '+')}));
    EXPECT_EQ(plan.pieces[2], (UplinkPiece{Kind::quoted, std::string(452, '+')}));
    EXPECT_EQ(plan.held_tail, "");
}

TEST(UplinkPlan, RandomStreamsKeepEveryByteAndNeverLeakATerminator) {
    std::mt19937 rng(1234);
    for (int round = 0; round < 2000; ++round) {
        std::string input;
        const int length = static_cast<int>(rng() % 64);
        for (int i = 0; i < length; ++i) input += (rng() % 3 == 0) ? '+' : static_cast<char>(rng() % 256);
        auto plan = plan_uplink(input, 5);
        std::string joined;
        for (const auto& piece : plan.pieces) {
            joined += piece.bytes;
            if (piece.kind == Kind::data_mode) {
                EXPECT_EQ(piece.bytes.find("+++"), std::string::npos);
                EXPECT_NE(piece.bytes.back(), '+');
            } else {
                EXPECT_EQ(piece.bytes.find_first_not_of('+'), std::string::npos);
                EXPECT_LE(piece.bytes.size(), 5u);
            }
        }
        joined += plan.held_tail;
        EXPECT_EQ(joined, input);
        EXPECT_LE(plan.held_tail.size(), 2u);
    }
}
