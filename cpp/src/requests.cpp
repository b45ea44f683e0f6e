// The request-level simulator (podsim/requests.hpp). Every floating-point expression mirrors the
// Python reference (podsim/engine/requests.py) operation by operation, Python's float floor
// division included, so that the two agree bit for bit.
#include "podsim/requests.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <unordered_map>

#include "podsim/errors.hpp"

namespace podsim {

namespace {

constexpr double kBucketsPerDoubling = 8.0;
constexpr std::int64_t kPollEvery = 4096;  // iterations between polls

// Python's float floor division (CPython's float_floor_div / _float_div_mod).
double py_floordiv(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0 && ((wx < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, vx / wx);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

// Bucket index: -2 for 0, -1 for (0, 1], k >= 1 for 2^(k/8).
std::int64_t bucket_index(double x) {
  if (x <= 1.0) return x > 0.0 ? -1 : -2;
  return static_cast<std::int64_t>(std::ceil(std::log2(x) * kBucketsPerDoubling));
}

double bucket_value(std::int64_t k) {
  if (k < 0) return k == -1 ? 1.0 : 0.0;
  return std::pow(2.0, static_cast<double>(k) / kBucketsPerDoubling);
}

// Blocks for a positive number of tokens: -(-tokens // block) in the reference.
std::int64_t blocks_for(std::int64_t tokens, std::int64_t block) {
  return (tokens + block - 1) / block;
}

// Blocks a sequence holds after its next `gain` tokens, int(-(-(in + generated + gain) // b))
// in the reference: the exact ceiling of x / b. With k = floor(x): k / b rounded up when x is
// an integer, else floor(k / b) + 1 (x / b lies strictly between k / b and (k + 1) / b).
std::int64_t blocks_after(std::int64_t input, double generated, double gain, std::int64_t block) {
  const double x = (static_cast<double>(input) + generated) + gain;
  const double k = std::floor(x);
  const auto whole = static_cast<std::int64_t>(k);
  return x == k ? (whole + block - 1) / block : whole / block + 1;
}

void fail(const std::string& field, const std::string& value, const std::string& allowed) {
  throw SpecError("requests: " + field + " = " + value + " is not allowed: " + allowed);
}

class Simulation {
 public:
  Simulation(const RequestWorkload& w, const RequestConfig& c, const StepTimeFn& step,
             const std::function<void()>& poll)
      : w_(w), c_(c), step_(step), poll_(poll), n_(static_cast<std::int64_t>(w.arrival_s.size())) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    run_.first_s.assign(n_, nan);
    run_.finish_s.assign(n_, nan);
    todo_.resize(n_);
    for (std::int64_t r = 0; r < n_; ++r) todo_[r] = w.input_len[r] - w.cached[r];
    held_.assign(n_, 0);
    generated_.assign(n_, 0.0);
    blocks_free_ =
        static_cast<std::int64_t>(py_floordiv(c.kv_capacity_tokens, static_cast<double>(c.block)));
  }

  RequestRun run() {
    while (next_ < n_ || !waiting_.empty() || !running_.empty() || !prefilling_.empty()) {
      arrive_until(now_);
      if (waiting_.empty() && running_.empty() && prefilling_.empty()) {
        now_ = w_.arrival_s[next_];
        continue;
      }
      iteration();
      if (poll_ && run_.iterations % kPollEvery == 0) poll_();
    }
    run_.makespan_s = now_;
    run_.mean_in_system = last_ > 0 ? area_ / last_ : 0.0;
    return std::move(run_);
  }

 private:
  bool sarathi() const { return c_.scheduler == Scheduler::kSarathi; }
  bool orca() const { return c_.scheduler == Scheduler::kOrca; }

  void arrive_until(double t) {
    while (next_ < n_ && w_.arrival_s[next_] <= t) {
      area_ += static_cast<double>(in_system_) * (w_.arrival_s[next_] - last_);
      last_ = w_.arrival_s[next_];
      ++in_system_;
      waiting_.push_back(next_);
      ++next_;
    }
  }

  void depart(std::int64_t r, double t) {
    area_ += static_cast<double>(in_system_) * (t - last_);
    last_ = t;
    --in_system_;
    run_.finish_s[r] = t;
  }

  // Admission: chunks of prompts to compute this iteration, (request, tokens).
  void admit() {
    chunks_.clear();
    std::int64_t admitted = 0;
    std::int64_t room = c_.budget;
    if (sarathi()) {
      room = std::max<std::int64_t>(0, c_.budget - static_cast<std::int64_t>(running_.size()));
      for (const std::int64_t r : prefilling_) {
        const std::int64_t take = std::min(todo_[r], room);
        if (take != 0) {
          chunks_.emplace_back(r, take);
          room -= take;
        }
      }
    }
    while (!waiting_.empty() &&
           static_cast<std::int64_t>(running_.size() + prefilling_.size()) < c_.max_batch &&
           room > 0) {
      const std::int64_t r = waiting_.front();
      const auto prompt =
          static_cast<std::int64_t>(static_cast<double>(w_.input_len[r]) + generated_[r]);
      const std::int64_t need = blocks_for(prompt + (orca() ? w_.output_len[r] : 1), c_.block);
      if (need > blocks_free_) {
        if (running_.empty() && prefilling_.empty() && need > total_blocks()) unfit(r, need);
        break;
      }
      const std::int64_t take = sarathi() ? std::min(todo_[r], room) : todo_[r];
      if (!sarathi() && admitted != 0 && admitted + take > c_.budget) break;
      waiting_.pop_front();
      blocks_free_ -= need;
      held_[r] = need;
      prefilling_.push_back(r);
      chunks_.emplace_back(r, take);
      admitted += take;
      room -= take;
    }
  }

  std::int64_t total_blocks() const {
    return static_cast<std::int64_t>(
        py_floordiv(c_.kv_capacity_tokens, static_cast<double>(c_.block)));
  }

  [[noreturn]] void unfit(std::int64_t r, std::int64_t need) const {
    throw SpecError("requests: request " + std::to_string(r) + " needs " + std::to_string(need) +
                    " KV blocks of " + std::to_string(c_.block) +
                    " tokens and the whole cache holds " + std::to_string(total_blocks()) +
                    ": it can never be admitted");
  }

  // Blocks each running sequence needs for the decode step's new tokens (needs_, in running_
  // order) and the blocks beyond those held, in all (the reference's _extra_blocks).
  std::int64_t extra_blocks() {
    needs_.resize(running_.size());
    std::int64_t extra = 0;
    for (std::size_t i = 0; i < running_.size(); ++i) {
      const std::int64_t r = running_[i];
      needs_[i] = blocks_after(w_.input_len[r], generated_[r], c_.gain, c_.block);
      extra += std::max<std::int64_t>(0, needs_[i] - held_[r]);
    }
    return extra;
  }

  // Preempts the latest admitted sequences until the step's new tokens fit; the blocks still
  // missing (the reference recomputes the sum after each preemption: the same integers).
  std::int64_t preempt() {
    std::int64_t extra = extra_blocks();
    while (extra > blocks_free_ && running_.size() > 1 && !orca()) {
      const std::int64_t victim = running_.back();
      extra -= std::max<std::int64_t>(0, needs_.back() - held_[victim]);
      running_.pop_back();
      needs_.pop_back();
      blocks_free_ += held_[victim];
      held_[victim] = 0;
      todo_[victim] = static_cast<std::int64_t>(
          static_cast<double>(w_.input_len[victim] - w_.cached[victim]) + generated_[victim]);
      waiting_.push_front(victim);
      ++run_.preemptions;
    }
    return extra;
  }

  double step_time(std::int64_t seqs, double context, std::int64_t tokens) {
    const std::int64_t kc = bucket_index(context);
    const std::int64_t kt = bucket_index(static_cast<double>(tokens));
    const auto key = (static_cast<std::uint64_t>(seqs) << 32) ^
                     (static_cast<std::uint64_t>(kc + 2) << 16) ^
                     static_cast<std::uint64_t>(kt + 2);
    const auto found = cache_.find(key);
    if (found != cache_.end()) return found->second;
    const double t = step_(seqs, bucket_value(kc), bucket_value(kt));
    ++run_.step_evaluations;
    if (!std::isfinite(t) || t < 0.0) {
      fail("step time", std::to_string(t), "a finite number of seconds >= 0");
    }
    cache_.emplace(key, t);
    return t;
  }

  void iteration() {
    admit();
    // A decode iteration (every iteration for sarathi; for the others only without prompts).
    const bool decode = sarathi() || chunks_.empty();
    const std::int64_t extra = decode && !running_.empty() ? preempt() : 0;
    const std::int64_t decoding = decode ? static_cast<std::int64_t>(running_.size()) : 0;
    std::int64_t prefill_tokens = 0;
    for (const auto& chunk : chunks_) prefill_tokens += chunk.second;
    double context = 0.0;
    if (decoding != 0) {
      for (const std::int64_t r : running_) {
        context += static_cast<double>(w_.input_len[r]) + generated_[r];
      }
      context /= static_cast<double>(decoding);
    }
    const double dt = step_time(decoding, context, prefill_tokens);
    now_ += dt;
    run_.busy_s += dt;
    ++run_.iterations;
    if (decoding != 0) progress_decode(extra);
    progress_prefill();
  }

  void progress_decode(std::int64_t extra) {
    blocks_free_ -= extra;
    done_.clear();
    for (std::size_t i = 0; i < running_.size(); ++i) {
      const std::int64_t r = running_[i];
      held_[r] = std::max(held_[r], needs_[i]);
      generated_[r] += c_.gain;
      if (generated_[r] >= static_cast<double>(w_.output_len[r] - 1) - 1e-9) done_.push_back(r);
    }
    if (done_.empty()) return;
    std::size_t d = 0;
    std::erase_if(running_, [&](std::int64_t r) {
      if (d < done_.size() && done_[d] == r) {
        ++d;
        return true;
      }
      return false;
    });
    for (const std::int64_t r : done_) {
      blocks_free_ += held_[r];
      held_[r] = 0;
      depart(r, now_);
    }
  }

  void progress_prefill() {
    for (const auto& [r, take] : chunks_) {
      todo_[r] -= take;
      if (todo_[r] > 0) continue;
      prefilling_.erase(std::find(prefilling_.begin(), prefilling_.end(), r));
      if (std::isnan(run_.first_s[r])) run_.first_s[r] = now_;
      if (w_.output_len[r] <= 1) {
        blocks_free_ += held_[r];
        held_[r] = 0;
        depart(r, now_);
      } else {
        running_.push_back(r);
      }
    }
  }

  const RequestWorkload& w_;
  const RequestConfig& c_;
  const StepTimeFn& step_;
  const std::function<void()>& poll_;
  const std::int64_t n_;
  RequestRun run_;
  std::vector<std::int64_t> todo_, held_;
  std::vector<double> generated_;
  std::deque<std::int64_t> waiting_;
  std::vector<std::int64_t> prefilling_, running_, done_, needs_;
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks_;
  std::unordered_map<std::uint64_t, double> cache_;
  std::int64_t next_ = 0, in_system_ = 0, blocks_free_ = 0;
  double now_ = 0.0, area_ = 0.0, last_ = 0.0;
};

}  // namespace

double step_bucket(double x) { return bucket_value(bucket_index(x)); }

void validate(const RequestWorkload& w, const RequestConfig& c) {
  const std::size_t n = w.arrival_s.size();
  if (w.input_len.size() != n || w.output_len.size() != n || w.cached.size() != n) {
    fail("input_len, output_len, cached", "arrays of other lengths",
         "one value per request (" + std::to_string(n) + ")");
  }
  for (std::size_t r = 0; r < n; ++r) {
    std::string at = "[";  // (built in steps: GCC 12 warns falsely on "[" + std::string)
    at += std::to_string(r);
    at += "]";
    if (!std::isfinite(w.arrival_s[r]) || w.arrival_s[r] < 0.0 ||
        (r > 0 && w.arrival_s[r] < w.arrival_s[r - 1])) {
      fail("arrival_s" + at, std::to_string(w.arrival_s[r]), "finite, >= 0 and sorted");
    }
    if (w.input_len[r] < 1) fail("input_len" + at, std::to_string(w.input_len[r]), ">= 1");
    if (w.output_len[r] < 1) fail("output_len" + at, std::to_string(w.output_len[r]), ">= 1");
    if (w.cached[r] < 0 || w.cached[r] >= w.input_len[r]) {
      fail("cached" + at, std::to_string(w.cached[r]), "in [0, input_len)");
    }
  }
  if (!std::isfinite(c.kv_capacity_tokens) || c.kv_capacity_tokens < 0.0 ||
      c.kv_capacity_tokens > 1e15) {
    fail("kv_capacity_tokens", std::to_string(c.kv_capacity_tokens), "in [0, 1e15]");
  }
  if (c.max_batch < 1 || c.max_batch > (std::int64_t{1} << 31)) {
    fail("max_batch", std::to_string(c.max_batch), "in [1, 2^31]");
  }
  if (c.budget < 1) fail("budget", std::to_string(c.budget), ">= 1");
  if (c.block < 1 || c.block > (std::int64_t{1} << 20)) {
    fail("block", std::to_string(c.block), "in [1, 2^20]");
  }
  if (!std::isfinite(c.gain) || c.gain <= 0.0 || c.gain > 1e6) {
    fail("gain", std::to_string(c.gain), "in (0, 1e6]");
  }
  const int s = static_cast<int>(c.scheduler);
  if (s < 0 || s > 2) fail("scheduler", std::to_string(s), "0 (vllm), 1 (sarathi) or 2 (orca)");
}

RequestRun simulate_requests(const RequestWorkload& workload, const RequestConfig& config,
                             const StepTimeFn& step, const std::function<void()>& poll) {
  validate(workload, config);
  return Simulation(workload, config, step, poll).run();
}

}  // namespace podsim
