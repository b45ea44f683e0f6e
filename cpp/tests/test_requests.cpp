// The request-level simulator (podsim/requests.hpp): buckets, closed-form runs derived in the
// comments, checks at the boundary, interruption and determinism. The Python differential
// tests (tests/test_requests_fast.py) compare it with the reference on random workloads.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "podsim/errors.hpp"
#include "podsim/requests.hpp"

using namespace podsim;
using namespace podsim::test;

namespace {

RequestWorkload one(std::int64_t input, std::int64_t output, std::int64_t cached = 0) {
  return {{0.0}, {input}, {output}, {cached}};
}

const StepTimeFn kOneSecond = [](std::int64_t, double, double) { return 1.0; };

void buckets() {
  // 0 -> 0, (0, 1] -> 1, powers of two stay, 3 -> 2^(ceil(8 log2 3) / 8) = 2^(13/8).
  expect(step_bucket(0.0) == 0.0 && step_bucket(0.25) == 1.0 && step_bucket(1.0) == 1.0,
         "bucket of 0 and of (0, 1]");
  expect(step_bucket(2.0) == 2.0 && step_bucket(1024.0) == 1024.0, "powers of two stay");
  expect_near(step_bucket(3.0), std::pow(2.0, 13.0 / 8.0), "bucket of 3", 1e-15);
  expect(step_bucket(1000.0) >= 1000.0 && step_bucket(1000.0) < 1000.0 * std::pow(2.0, 0.125),
         "a bucket is at most 2^(1/8) above its value");
}

void vllm_one_request() {
  // t = 0: the prompt (one iteration of 1 s), first token at 1; the output's other two tokens
  // take one decode iteration each: finish at 3, three iterations.
  const RequestConfig c{1e6, 256, Scheduler::kVllm, 8192, 16, 1.0};
  const RequestRun r = simulate_requests(one(10, 3), c, kOneSecond);
  expect(r.first_s[0] == 1.0 && r.finish_s[0] == 3.0 && r.iterations == 3, "vllm: 1 s, 3 s");
  expect(r.makespan_s == 3.0 && r.busy_s == 3.0 && r.preemptions == 0, "vllm totals");
  // One request in the system from 0 to 3: the time average is 1.
  expect(r.mean_in_system == 1.0, "Little: one request all the time");
}

void sarathi_chunks() {
  // Budget 4: chunks of 4, 4, 2 tokens (t = 1, 2, 3: first token at 3), then one decode
  // iteration for the second output token: finish at 4.
  const RequestConfig c{1e6, 256, Scheduler::kSarathi, 4, 16, 1.0};
  const RequestRun r = simulate_requests(one(10, 2), c, kOneSecond);
  expect(r.first_s[0] == 3.0 && r.finish_s[0] == 4.0 && r.iterations == 4, "sarathi chunks");
  // With 6 of the 10 prompt tokens in the prefix cache only 4 are computed: one chunk.
  const RequestRun hit = simulate_requests(one(10, 2, 6), c, kOneSecond);
  expect(hit.first_s[0] == 1.0 && hit.finish_s[0] == 2.0, "prefix hits skip their tokens");
}

void step_arguments_are_buckets() {
  // The step sees the bucketed prompt tokens: 100 -> 2^(ceil(8 log2 100) / 8) = 2^(54/8).
  std::vector<double> seen;
  const StepTimeFn record = [&seen](std::int64_t, double, double tokens) {
    seen.push_back(tokens);
    return 1.0;
  };
  const RequestConfig c{1e6, 256, Scheduler::kVllm, 8192, 16, 1.0};
  const RequestRun r = simulate_requests(one(100, 3), c, record);
  expect(!seen.empty() && seen[0] == std::pow(2.0, 54.0 / 8.0), "prefill tokens bucketed");
  // Two decode iterations at contexts 100 and 101, both in bucket 2^(54/8): one evaluation
  // for both, so two in all.
  expect(r.step_evaluations == 2 && seen.size() == 2, "steps cached by bucket");
}

void bad_input_is_named() {
  const RequestConfig c{1e6, 256, Scheduler::kVllm, 8192, 16, 1.0};
  expect_throws<SpecError>([&] { simulate_requests(one(0, 3), c, kOneSecond); }, "input_len 0",
                           "input_len[0] = 0");
  expect_throws<SpecError>([&] { simulate_requests(one(10, 3, 10), c, kOneSecond); },
                           "cached = input", "cached[0] = 10");
  RequestWorkload unsorted{{1.0, 0.5}, {1, 1}, {1, 1}, {0, 0}};
  expect_throws<SpecError>([&] { simulate_requests(unsorted, c, kOneSecond); }, "unsorted arrivals",
                           "arrival_s[1]");
  RequestWorkload ragged{{0.0, 1.0}, {1}, {1, 1}, {0, 0}};
  expect_throws<SpecError>([&] { simulate_requests(ragged, c, kOneSecond); }, "ragged",
                           "one value per request (2)");
  RequestConfig bad = c;
  bad.block = 0;
  expect_throws<SpecError>([&] { simulate_requests(one(1, 1), bad, kOneSecond); }, "block 0",
                           "block = 0");
  bad = c;
  bad.gain = std::nan("");
  expect_throws<SpecError>([&] { simulate_requests(one(1, 1), bad, kOneSecond); }, "gain nan",
                           "gain");
  // 100 prompt tokens need 7 blocks of 16 (with the first output token); a cache of 64 tokens
  // holds 4: never admitted, an error rather than a run that never ends.
  RequestConfig tiny = c;
  tiny.kv_capacity_tokens = 64;
  expect_throws<SpecError>([&] { simulate_requests(one(100, 2), tiny, kOneSecond); },
                           "unfit request", "needs 7 KV blocks");
  const StepTimeFn negative = [](std::int64_t, double, double) { return -1.0; };
  expect_throws<SpecError>([&] { simulate_requests(one(1, 2), c, negative); }, "negative step",
                           "step time");
}

void poll_stops_and_runs_repeat() {
  RequestWorkload w;
  for (int i = 0; i < 20000; ++i) {
    w.arrival_s.push_back(0.001 * i);
    w.input_len.push_back(100 + i % 37);
    w.output_len.push_back(5 + i % 11);
    w.cached.push_back(i % 3);
  }
  const StepTimeFn linear = [](std::int64_t s, double ctx, double t) {
    return 0.004 + 1e-5 * static_cast<double>(s) + 1e-8 * ctx + 1e-6 * t;
  };
  for (const Scheduler s : {Scheduler::kVllm, Scheduler::kSarathi, Scheduler::kOrca}) {
    const RequestConfig c{3000, 64, s, 512, 16, 1.85};
    const RequestRun a = simulate_requests(w, c, linear);
    const RequestRun b = simulate_requests(w, c, linear);
    expect(a.first_s == b.first_s && a.finish_s == b.finish_s && a.iterations == b.iterations,
           "same input, same bits");
    bool finished = true;
    for (std::size_t r = 0; r < w.arrival_s.size(); ++r) {
      finished = finished && a.finish_s[r] >= a.first_s[r] && a.first_s[r] > w.arrival_s[r];
    }
    expect(finished, "every request finishes after its first token");
    if (s == Scheduler::kOrca) expect(a.preemptions == 0, "orca never preempts");
    if (s == Scheduler::kVllm) expect(a.preemptions > 0, "a small cache preempts under vllm");
  }
  const RequestConfig c{3000, 64, Scheduler::kVllm, 512, 16, 1.0};
  int polls = 0;
  expect_throws<std::runtime_error>(
      [&] {
        simulate_requests(w, c, linear, [&polls] {
          if (++polls == 2) throw std::runtime_error("stop");
        });
      },
      "a poll that throws stops the run", "stop");
}

}  // namespace

int main() {
  buckets();
  vllm_one_request();
  sarathi_chunks();
  step_arguments_are_buckets();
  bad_input_is_named();
  poll_stops_and_runs_repeat();
  return summary();
}
