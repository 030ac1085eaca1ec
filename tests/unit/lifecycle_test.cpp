// The modem lifecycle transition table (modem/lifecycle.hpp), row by row, and the recovery budget.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "modem/lifecycle.hpp"

using namespace slmd::modem;
using S = ModemState;
using E = ModemEvent;

namespace {

const std::vector<S> all_states = {S::starting,      S::syncing,     S::detecting_release, S::enabling_urcs,
                                   S::radio_on,      S::registering, S::reading_address,   S::serving,
                                   S::deregistered,  S::recovering,  S::backing_off,       S::waiting_for_port,
                                   S::stopping,      S::stopped,     S::maintenance};
const std::vector<E> all_events = {
    E::start,           E::synced,          E::release_detected,  E::urcs_enabled,    E::radio_switched_on,
    E::registered,      E::address_read,    E::registration_lost, E::bringup_failed,  E::address_failed,
    E::modem_ready,     E::recovery_allowed, E::recovery_denied,  E::backoff_elapsed, E::serial_lost,
    E::serial_back,     E::stop_requested,  E::radio_off,         E::gave_up,         E::maintenance_started,
    E::maintenance_ended};
const std::vector<S> bringup_states = {S::syncing,  S::detecting_release, S::enabling_urcs,
                                       S::radio_on, S::registering,       S::reading_address};

struct Row {
    S from;
    E event;
    S to;
};

// Every transition there is. Any (state, event) pair not listed leaves the state unchanged.
std::vector<Row> table() {
    std::vector<Row> rows = {
        // Bring-up, step by step.
        {S::starting, E::start, S::syncing},
        {S::syncing, E::synced, S::detecting_release},
        {S::detecting_release, E::release_detected, S::enabling_urcs},
        {S::enabling_urcs, E::urcs_enabled, S::radio_on},
        {S::radio_on, E::radio_switched_on, S::registering},
        {S::registering, E::registered, S::reading_address},
        {S::reading_address, E::address_read, S::serving},
        // Registration lost and regained while serving: the address is read again.
        {S::serving, E::registration_lost, S::deregistered},
        {S::deregistered, E::registered, S::reading_address},
        {S::reading_address, E::address_failed, S::deregistered},
        {S::reading_address, E::registration_lost, S::deregistered},
        // Reboots while serving or deregistered: recover (the budget decides when).
        {S::serving, E::modem_ready, S::recovering},
        {S::deregistered, E::modem_ready, S::recovering},
        {S::recovering, E::recovery_allowed, S::syncing},
        {S::recovering, E::recovery_denied, S::backing_off},
        {S::backing_off, E::backoff_elapsed, S::recovering},
        // A credential write's planned radio-off window (slmctl cred): from serving or deregistered, back to
        // deregistered when AT+CFUN=1 was sent (registration then returns as after a loss); a reboot or serial
        // loss meanwhile is handled as anywhere else.
        {S::serving, E::maintenance_started, S::maintenance},
        {S::deregistered, E::maintenance_started, S::maintenance},
        {S::maintenance, E::maintenance_ended, S::deregistered},
        {S::maintenance, E::modem_ready, S::recovering},
        {S::maintenance, E::serial_lost, S::waiting_for_port},
        // Serial loss and return.
        {S::starting, E::serial_lost, S::waiting_for_port},
        {S::serving, E::serial_lost, S::waiting_for_port},
        {S::deregistered, E::serial_lost, S::waiting_for_port},
        {S::recovering, E::serial_lost, S::waiting_for_port},
        {S::backing_off, E::serial_lost, S::waiting_for_port},
        {S::waiting_for_port, E::serial_back, S::recovering},
        // Graceful stop from everywhere.
        {S::stopping, E::radio_off, S::stopped},
    };
    for (S state : bringup_states) {
        rows.push_back({state, E::modem_ready, S::recovering});
        rows.push_back({state, E::bringup_failed, S::backing_off});
        rows.push_back({state, E::gave_up, S::stopped});
        rows.push_back({state, E::serial_lost, S::waiting_for_port});
    }
    for (S state : all_states) {
        if (state != S::stopping && state != S::stopped) rows.push_back({state, E::stop_requested, S::stopping});
    }
    return rows;
}

}  // namespace

TEST(LifecycleTable, EveryListedTransition) {
    for (const auto& row : table()) {
        const auto next = next_state(row.from, row.event);
        ASSERT_TRUE(next.has_value()) << to_string(row.from) << " + " << to_string(row.event);
        EXPECT_EQ(*next, row.to) << to_string(row.from) << " + " << to_string(row.event) << " gave "
                                 << to_string(*next) << ", expected " << to_string(row.to);
    }
}

TEST(LifecycleTable, EveryOtherPairLeavesTheStateAlone) {
    std::set<std::pair<S, E>> listed;
    for (const auto& row : table()) listed.insert({row.from, row.event});
    std::size_t unchanged = 0;
    for (S state : all_states) {
        for (E event : all_events) {
            if (listed.count({state, event})) continue;
            const auto next = next_state(state, event);
            EXPECT_FALSE(next.has_value()) << to_string(state) << " + " << to_string(event) << " gave "
                                           << to_string(*next);
            ++unchanged;
        }
    }
    EXPECT_EQ(unchanged + listed.size(), all_states.size() * all_events.size());
}

TEST(LifecycleTable, ReadyWhileBackingOffOrWaitingAddsNothing) {
    // The firmware rebooting by itself must not make slmd start a bring-up (or anything else) of its own.
    EXPECT_FALSE(next_state(S::backing_off, E::modem_ready));
    EXPECT_FALSE(next_state(S::waiting_for_port, E::modem_ready));
    EXPECT_FALSE(next_state(S::recovering, E::modem_ready));
    EXPECT_FALSE(next_state(S::stopping, E::modem_ready));
}

TEST(LifecycleTable, MaintenanceIsNoFault) {
    // The radio is off on purpose: registration going away is not a loss, and nothing starts a recovery.
    EXPECT_FALSE(next_state(S::maintenance, E::registration_lost));
    EXPECT_FALSE(next_state(S::maintenance, E::bringup_failed));
    EXPECT_FALSE(next_state(S::maintenance, E::registered));
    EXPECT_FALSE(is_bringing_up(S::maintenance));
    EXPECT_STREQ(to_string(S::maintenance), "radio off for maintenance");
}

TEST(LifecycleTable, StateNamesAreDistinctAndFitTheStatusReply) {
    std::set<std::string> names;
    for (S state : all_states) {
        const std::string name = to_string(state);
        EXPECT_LT(name.size(), 32u) << name;  // slmsock_status.modem_state is char[32]
        EXPECT_TRUE(names.insert(name).second) << name;
    }
    EXPECT_STREQ(to_string(S::serving), "serving");
    EXPECT_STREQ(to_string(S::deregistered), "deregistered");
    EXPECT_STREQ(to_string(S::backing_off), "backing off");
}

TEST(RecoveryBudget, AllowsMaxPerWindowThenBacksOffAndStartsAfresh) {
    using namespace std::chrono_literals;
    RecoveryBudget budget(RecoveryPolicy{.max_recoveries = 3, .window = 60s, .backoff = 600s});
    const auto t0 = RecoveryBudget::Clock::time_point{} + 1h;
    EXPECT_FALSE(budget.request(t0));
    EXPECT_FALSE(budget.request(t0 + 1s));
    EXPECT_FALSE(budget.request(t0 + 2s));
    EXPECT_EQ(budget.recent(t0 + 2s), 3u);
    auto backoff = budget.request(t0 + 3s);
    ASSERT_TRUE(backoff);
    EXPECT_EQ(*backoff, 600s);
    EXPECT_EQ(budget.backoffs(), 1u);
    EXPECT_EQ(budget.total(), 3u);
    // After the back-off the window is empty again.
    EXPECT_FALSE(budget.request(t0 + 603s));
    EXPECT_EQ(budget.total(), 4u);
}

TEST(RecoveryBudget, OldRecoveriesLeaveTheWindow) {
    using namespace std::chrono_literals;
    RecoveryBudget budget(RecoveryPolicy{.max_recoveries = 2, .window = 10s, .backoff = 100s});
    const auto t0 = RecoveryBudget::Clock::time_point{} + 1h;
    EXPECT_FALSE(budget.request(t0));
    EXPECT_FALSE(budget.request(t0 + 5s));
    EXPECT_TRUE(budget.request(t0 + 9s));    // two within 10 s: spent
    EXPECT_FALSE(budget.request(t0 + 200s));  // long after: allowed
    EXPECT_FALSE(budget.request(t0 + 211s));  // the one at 200 s has left the window
    EXPECT_EQ(budget.recent(t0 + 211s), 1u);
    EXPECT_EQ(budget.backoffs(), 1u);
}
