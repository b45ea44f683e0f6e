// The request-level serving simulator of one attention rank: arrivals, continuous batching,
// paged KV admission, recompute preemption, prefix-cache hits. The compiled form of the Python
// reference (podsim.engine.requests.simulate, the oracle of the tests): the same loop, the same
// floating-point operations in the same order, so both give the same bits per request.
//
// Per iteration the scheduler picks (budget: prompt tokens per iteration):
// - vllm: a prefill-only iteration when requests wait and their prompts fit in the free KV
//   cache and the budget, else a decode iteration of every running sequence;
// - sarathi (chunked prefill): every iteration decodes all running sequences and fills the rest
//   of the budget with prompt chunks;
// - orca: like vllm, but a request is admitted only when the KV of its whole prompt and output
//   is free, so nothing is ever preempted.
// A decode step whose new tokens need KV that is not free preempts the most recently admitted
// running sequence (its cache is dropped; it waits again at the head of the queue and recomputes
// its prompt and generated tokens). Each decode iteration gives every running sequence `gain`
// tokens (1 + accepted MTP drafts).
//
// Step times: step(decode_seqs, bucket(mean context), bucket(prefill tokens)), called once per
// distinct argument triple (the results are cached): bucket() rounds up to a ladder of 8 steps
// per doubling, as the Python front end does.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace podsim {

enum class Scheduler : int { kVllm = 0, kSarathi = 1, kOrca = 2 };

struct RequestWorkload {
  std::vector<double> arrival_s;         // sorted, finite, >= 0
  std::vector<std::int64_t> input_len;   // prompt tokens, >= 1
  std::vector<std::int64_t> output_len;  // generated tokens, >= 1
  std::vector<std::int64_t> cached;      // prefix-cache hits, in [0, input_len)
};

struct RequestConfig {
  double kv_capacity_tokens = 0.0;
  std::int64_t max_batch = 256;
  Scheduler scheduler = Scheduler::kVllm;
  std::int64_t budget = 8192;
  std::int64_t block = 16;
  double gain = 1.0;
};

struct RequestRun {
  std::vector<double> first_s;   // time of each request's first token
  std::vector<double> finish_s;  // time of its last token
  std::int64_t iterations = 0;
  std::int64_t preemptions = 0;
  std::int64_t step_evaluations = 0;  // calls of the step function (distinct triples)
  double makespan_s = 0.0;
  double busy_s = 0.0;
  double mean_in_system = 0.0;  // time average of requests in the system (Little's law)
};

// (decode sequences, bucketed mean context, bucketed prefill tokens) -> seconds.
using StepTimeFn = std::function<double(std::int64_t, double, double)>;

// x rounded up to 2^(k/8) for the smallest integer k with 2^(k/8) >= x (x > 1); 1 for x in
// (0, 1]; 0 for 0.
double step_bucket(double x);

// Checks the workload and the configuration (SpecError names the field and the value).
void validate(const RequestWorkload& workload, const RequestConfig& config);

// Runs the requests through one attention rank. `poll` is called every few thousand iterations
// (it may throw to stop the run). A request that can never be admitted (its KV needs more
// blocks than the whole cache) is a SpecError, and so is a step time that is negative or not
// finite.
RequestRun simulate_requests(const RequestWorkload& workload, const RequestConfig& config,
                             const StepTimeFn& step, const std::function<void()>& poll = {});

}  // namespace podsim
