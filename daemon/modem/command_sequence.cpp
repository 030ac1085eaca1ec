// Owns: running AT commands in order, stopping at the first refusal (see command_sequence.hpp).
#include "modem/command_sequence.hpp"

#include <memory>
#include <utility>

namespace slmd::modem {

namespace {

struct Sequence {
    sys::Lifetime::Guard alive;
    std::vector<at::CommandRequest> requests;
    SubmitCommand submit;
    std::function<void(std::optional<at::CommandResponse>)> done;
    std::size_t next = 0;
};

void run_next(const std::shared_ptr<Sequence>& sequence) {
    if (sequence->next == sequence->requests.size()) return sequence->done(std::nullopt);
    auto request = sequence->requests[sequence->next++];
    sequence->submit(std::move(request), [sequence](at::CommandResponse answer) {
        if (!*sequence->alive) return;
        if (!answer.ok()) return sequence->done(std::move(answer));
        run_next(sequence);
    });
}

}  // namespace

void submit_in_order(sys::Lifetime::Guard alive, std::vector<at::CommandRequest> requests, SubmitCommand submit,
                     std::function<void(std::optional<at::CommandResponse> refused)> done) {
    run_next(std::make_shared<Sequence>(
        Sequence{std::move(alive), std::move(requests), std::move(submit), std::move(done), 0}));
}

}  // namespace slmd::modem
