// Owns: telling an asynchronous completion whether the object that started it still exists. The daemon's
// long-lived objects are owned by value (main(), their layer's owner), not by shared_ptr, so
// shared_from_this() is no option; a handler that outlives its object (a timer or a read completing after the
// object went) must not touch it. The object holds a Lifetime and ends it first thing in its destructor; each
// handler captures a Guard and returns at once when `!*guard`.
//
// When callbacks and when coroutines: bring-up (modem/bringup.cpp) is a straight sequence of commands and
// awaits, so it is a coroutine; everything that reacts to events from several sources (the channel, the
// drivers, flows, the API) is callbacks guarded by a Lifetime.
#pragma once

#include <memory>


namespace slmd::sys {

class Lifetime {
public:
    class Guard {
    public:
        // True while the owner lives.
        bool operator*() const { return *alive_; }

    private:
        friend class Lifetime;
        explicit Guard(std::shared_ptr<const bool> alive) : alive_(std::move(alive)) {}
        std::shared_ptr<const bool> alive_;
    };

    Lifetime() = default;
    Lifetime(const Lifetime&) = delete;
    Lifetime& operator=(const Lifetime&) = delete;
    ~Lifetime() { end(); }

    Guard guard() const { return Guard(alive_); }
    // First thing in the owner's destructor, so that handlers its members' destruction runs see it ended.
    void end() { *alive_ = false; }

private:
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slmd::sys
