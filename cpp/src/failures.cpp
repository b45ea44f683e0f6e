#include "podsim/failures.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>

#include "podsim/errors.hpp"
#include "podsim/random.hpp"

namespace podsim {

namespace {

// Streams of the counter-based generator, distinct from the step engine's.
enum Stream : std::uint64_t { FailureTime = 101, FailureClass = 102 };

// A run simulates at most this many expected failures or checkpoints, so that a model whose
// job can never finish is refused instead of looping for hours.
constexpr double kMaxEventsPerRun = 1e9;
constexpr double kInf = std::numeric_limits<double>::infinity();

template <class T>
[[noreturn]] void reject(const char* field, T value, const char* allowed) {
  std::ostringstream out;
  out << "failure model: " << field << " = " << value << " is not allowed: " << allowed;
  throw SpecError(out.str());
}

void check_time(const char* field, double value, bool positive) {
  const bool ok = std::isfinite(value) && (positive ? value > 0 : value >= 0);
  if (!ok) reject(field, value, positive ? "a finite time > 0" : "a finite time >= 0");
}

void check_rate(const char* field, double value) {
  if (!(std::isfinite(value) && value >= 0)) reject(field, value, "a finite rate >= 0");
}

// Where the run is: which segment is being computed (or checkpointed), how much of it is done,
// which segments are durable, and what the run has measured so far.
enum class Phase : std::int8_t { Compute, Checkpoint, Restart };

class Run {
 public:
  Run(const FailureModel& model, const std::vector<double>& cumulative, std::int64_t segments,
      std::uint64_t key)
      : m_(model), cumulative_(cumulative), segments_(segments), key_(key) {
    spares_left_ = model.spares;
    next_failure_ = draw_failure_time(0.0);
    start_compute(0.0);
  }

  // Runs to completion or to max_wall_s; writes the results into slot `slot` of `out`.
  // `keep_going()` is asked every kCheckEvery events; once it answers false the run stops
  // where it is and returns false (its slot is then unspecified).
  template <class KeepGoing>
  bool simulate(LongRuns& out, std::int64_t slot, KeepGoing&& keep_going) {
    const auto classes = static_cast<std::int64_t>(m_.class_rates_per_s.size()) + 1;
    std::int64_t* counts = out.class_counts.data() + slot * classes;
    bool finished = false;
    for (std::uint32_t events = 1;; ++events) {
      if (events % kCheckEvery == 0 && !keep_going()) return false;
      if (phase_end_ <= next_failure_ && phase_end_ <= m_.max_wall_s) {
        account(phase_end_);
        if (complete_phase()) {
          finished = true;
          break;
        }
      } else if (next_failure_ <= m_.max_wall_s) {
        account(next_failure_);
        ++counts[fail()];
      } else {
        account(m_.max_wall_s);
        break;
      }
    }
    out.wall_s[slot] = t_;
    out.progress_s[slot] = finished ? m_.useful_time_s : progress();
    out.interruptions[slot] = interruptions_;
    out.lost_s[slot] = lost_;
    out.checkpoint_s[slot] = checkpoint_;
    out.restart_s[slot] = restart_;
    out.waiting_s[slot] = waiting_;
    out.spares_used[slot] = spares_used_;
    out.finished[slot] = finished ? 1 : 0;
    return true;
  }

 private:
  static constexpr std::uint32_t kCheckEvery = 4096;

  double segment_length(std::int64_t k) const {
    const double tau = m_.checkpoint_interval_s;
    return k + 1 < segments_ ? tau : m_.useful_time_s - static_cast<double>(k) * tau;
  }

  double progress() const {
    return static_cast<double>(segment_) * m_.checkpoint_interval_s + done_in_segment_;
  }

  double draw_failure_time(double now) {
    const double rate = cumulative_.back();
    if (rate <= 0) return kInf;
    return now + random::exponential(rate, m_.seed, FailureTime, key_, failure_draws_++);
  }

  // Advances the clock to `time`, charging the elapsed time to the current phase.
  void account(double time) {
    const double elapsed = time - t_;
    if (phase_ == Phase::Compute) {
      done_in_segment_ += elapsed;
    } else if (phase_ == Phase::Checkpoint) {
      checkpoint_ += elapsed;
    } else {
      // The first restart_s of a restart phase is the restart itself, the rest waits for spares.
      const double restart_end = phase_start_ + m_.restart_s;
      const double restart_part = std::max(0.0, std::min(time, restart_end) - t_);
      restart_ += restart_part;
      waiting_ += elapsed - restart_part;
    }
    t_ = time;
  }

  void start_compute(double now) {
    phase_ = Phase::Compute;
    phase_start_ = now;
    done_in_segment_ = 0.0;
    phase_end_ = now + segment_length(segment_);
  }

  void start_checkpoint(double now) {
    phase_ = Phase::Checkpoint;
    phase_start_ = now;
    phase_end_ = m_.checkpoint_async
                     ? std::max(now, pending_ ? pending_at_ : now) + m_.checkpoint_snapshot_s
                     : now + m_.checkpoint_write_s;
  }

  // The current phase has run to its end; true once the job is done.
  bool complete_phase() {
    if (phase_ == Phase::Compute) {
      if (segment_ + 1 == segments_) return true;
      start_checkpoint(t_);
    } else if (phase_ == Phase::Checkpoint) {
      ++segment_;
      if (!m_.checkpoint_async) {
        durable_ = segment_;
      } else {
        if (pending_) durable_ = pending_segment_;  // the snapshot waited for it to land
        pending_ = true;
        pending_segment_ = segment_;
        pending_at_ = t_ + m_.checkpoint_write_s;
      }
      start_compute(t_);
    } else {
      start_compute(t_);
    }
    return false;
  }

  // A failure at the current time; returns its class (the last one: a link).
  std::size_t fail() {
    if (++interruptions_ > kMaxFailuresPerRun) {
      std::ostringstream out;
      out << "failure model: a run had more than " << kMaxFailuresPerRun
          << " failures (the job fails every " << 1.0 / cumulative_.back()
          << " s on average, a restart takes " << m_.restart_s << " s, a checkpoint interval is "
          << m_.checkpoint_interval_s << " s): the job practically never finishes";
      throw SpecError(out.str());
    }
    const std::size_t c = draw_class();
    if (pending_ && pending_at_ <= t_) durable_ = pending_segment_;
    pending_ = false;  // a write still in flight dies with the job
    // Whole segments not yet durable, plus the part of this one (0 during a restart).
    lost_ += static_cast<double>(segment_ - durable_) * m_.checkpoint_interval_s + done_in_segment_;
    segment_ = durable_;
    done_in_segment_ = 0.0;
    take_spares(c);
    next_failure_ = draw_failure_time(t_);
    phase_ = Phase::Restart;
    phase_start_ = t_;
    phase_end_ = std::max(t_ + m_.restart_s, replacement_until_);
    return c;
  }

  std::size_t draw_class() {
    const std::size_t n = cumulative_.size();
    if (n == 1) return 0;
    const double u =
        random::uniform(m_.seed, FailureClass, key_, interruptions_) * cumulative_.back();
    const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    std::size_t c = std::min(static_cast<std::size_t>(it - cumulative_.begin()), n - 1);
    while (c > 0 && cumulative_[c] == cumulative_[c - 1]) --c;  // never a class of rate zero
    return c;
  }

  void take_spares(std::size_t c) {
    if (c >= m_.class_spare_devices.size()) return;  // a link
    const std::int64_t need = m_.class_spare_devices[c];
    if (need == 0) return;
    if (spares_left_ < 0) {
      spares_used_ += need;
    } else if (spares_left_ >= need) {
      spares_left_ -= need;
      spares_used_ += need;
    } else {
      spares_used_ += spares_left_;
      spares_left_ = 0;
      replacement_until_ = std::max(replacement_until_, t_ + m_.replacement_s);
    }
  }

  const FailureModel& m_;
  const std::vector<double>& cumulative_;  // job failure rate up to each class, links last
  const std::int64_t segments_;
  const std::uint64_t key_;

  double t_ = 0.0;
  Phase phase_ = Phase::Compute;
  double phase_start_ = 0.0;
  double phase_end_ = 0.0;
  double next_failure_ = kInf;
  std::uint64_t failure_draws_ = 0;

  std::int64_t segment_ = 0;  // segments fully computed and checkpoint-started before this one
  double done_in_segment_ = 0.0;
  std::int64_t durable_ = 0;  // segments covered by a durable checkpoint
  bool pending_ = false;      // an asynchronous write in flight
  std::int64_t pending_segment_ = 0;
  double pending_at_ = 0.0;

  std::int64_t spares_left_ = -1;
  double replacement_until_ = 0.0;

  std::int64_t interruptions_ = 0;
  double lost_ = 0.0;
  double checkpoint_ = 0.0;
  double restart_ = 0.0;
  double waiting_ = 0.0;
  std::int64_t spares_used_ = 0;
};

std::int64_t segment_count(const FailureModel& m) {
  const double tau = m.checkpoint_interval_s;
  auto n = static_cast<std::int64_t>(std::ceil(m.useful_time_s / tau));
  // Guard against rounding: a last segment of (almost) zero length is no segment.
  if (n > 1 && static_cast<double>(n - 1) * tau >= m.useful_time_s) --n;
  return std::max<std::int64_t>(n, 1);
}

}  // namespace

void FailureModel::validate() const {
  if (devices < 1) reject("devices", devices, "an integer >= 1");
  if (links < 0) reject("links", links, "an integer >= 0");
  if (class_rates_per_s.empty()) reject("class_rates_per_s", "[]", "at least one failure class");
  if (class_spare_devices.size() != class_rates_per_s.size()) {
    reject("class_spare_devices", class_spare_devices.size(),
           "one entry per failure class (as many as class_rates_per_s)");
  }
  for (double r : class_rates_per_s) check_rate("class_rates_per_s", r);
  for (std::int64_t s : class_spare_devices) {
    if (s < 0 || s > kMaxSpareDevicesPerFailure) {
      reject("class_spare_devices", s, "an integer in [0, 1000000000]");
    }
  }
  check_rate("link_rate_per_s", link_rate_per_s);
  if (link_rate_per_s > 0 && links == 0) reject("links", links, ">= 1 when link_rate_per_s > 0");
  check_time("useful_time_s", useful_time_s, true);
  check_time("max_wall_s", max_wall_s, true);
  check_time("checkpoint_interval_s", checkpoint_interval_s, true);
  check_time("checkpoint_write_s", checkpoint_write_s, false);
  check_time("checkpoint_snapshot_s", checkpoint_snapshot_s, false);
  check_time("restart_s", restart_s, false);
  check_time("replacement_s", replacement_s, false);
  if (runs < 1) reject("runs", runs, "an integer >= 1");
  const double rate = job_rate_per_s();
  if (!std::isfinite(rate) || rate * max_wall_s > kMaxEventsPerRun) {
    reject("max_wall_s", max_wall_s, "at most 1e9 expected failures per run (rate x max_wall_s)");
  }
  if (useful_time_s / checkpoint_interval_s > kMaxEventsPerRun) {
    reject("checkpoint_interval_s", checkpoint_interval_s,
           "at most 1e9 checkpoints per job (useful_time_s / checkpoint_interval_s)");
  }
}

double FailureModel::job_rate_per_s() const {
  double per_device = 0.0;
  for (double r : class_rates_per_s) per_device += r;
  return static_cast<double>(devices) * per_device + static_cast<double>(links) * link_rate_per_s;
}

void LongRuns::resize(std::int64_t runs, std::int64_t classes) {
  const auto n = static_cast<std::size_t>(runs);
  wall_s.assign(n, 0.0);
  progress_s.assign(n, 0.0);
  interruptions.assign(n, 0);
  lost_s.assign(n, 0.0);
  checkpoint_s.assign(n, 0.0);
  restart_s.assign(n, 0.0);
  waiting_s.assign(n, 0.0);
  spares_used.assign(n, 0);
  finished.assign(n, 0);
  class_counts.assign(n * static_cast<std::size_t>(classes + 1), 0);
}

void simulate_long_runs(const FailureModel& model, std::int64_t first, std::int64_t count,
                        int threads, LongRuns& out) {
  simulate_long_runs(model, first, count, threads, out, {});
}

void simulate_long_runs(const FailureModel& model, std::int64_t first, std::int64_t count,
                        int threads, LongRuns& out, const std::function<void()>& poll,
                        double poll_interval_s) {
  model.validate();
  if (threads < 1) reject("threads", threads, "an integer >= 1");
  if (first < 0 || count < 0 || first > model.runs || count > model.runs - first) {
    reject("count", count, "runs [first, first + count) inside [0, runs)");
  }
  if (!(poll_interval_s > 0 && poll_interval_s <= 3600)) {
    reject("poll_interval_s", poll_interval_s, "in (0, 3600] seconds");
  }
  if (out.wall_s.size() != static_cast<std::size_t>(model.runs)) {
    out.resize(model.runs, static_cast<std::int64_t>(model.class_rates_per_s.size()));
  }
  std::vector<double> cumulative;
  double total = 0.0;
  for (double r : model.class_rates_per_s) {
    total += static_cast<double>(model.devices) * r;
    cumulative.push_back(total);
  }
  cumulative.push_back(total + static_cast<double>(model.links) * model.link_rate_per_s);
  const std::int64_t segments = segment_count(model);

  // Run r always uses key r and writes only slot r, so whichever thread takes it, and however
  // many threads there are, the bits are the same. Threads take the next run from a counter.
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable all_done;
  int running = 0;           // worker threads not yet finished
  std::exception_ptr error;  // the first exception: a run's or poll's
  auto record = [&](std::exception_ptr e) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = std::move(e);
    stop.store(true);
  };
  auto keep_going = [&] { return !stop.load(std::memory_order_relaxed); };
  auto work = [&](auto&& check) {
    while (check()) {
      const std::int64_t i = next.fetch_add(1);
      if (i >= count) break;
      const std::int64_t r = first + i;
      try {
        Run(model, cumulative, segments, static_cast<std::uint64_t>(r)).simulate(out, r, check);
      } catch (...) {
        record(std::current_exception());
      }
    }
  };

  // The calling thread polls at about poll_interval_s, between runs and inside long ones.
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(poll_interval_s));
  auto last_poll = std::chrono::steady_clock::now();
  auto poll_now = [&] {
    try {
      poll();
    } catch (...) {
      record(std::current_exception());
    }
    last_poll = std::chrono::steady_clock::now();
  };
  auto caller_check = [&] {
    if (poll && std::chrono::steady_clock::now() - last_poll >= interval) poll_now();
    return keep_going();
  };

  const std::int64_t helpers = std::clamp<std::int64_t>(count, 1, threads) - 1;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(helpers));
  for (std::int64_t j = 0; j < helpers; ++j) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      ++running;
    }
    try {
      pool.emplace_back([&] {
        work(keep_going);
        const std::lock_guard<std::mutex> lock(mutex);
        --running;
        all_done.notify_all();
      });
    } catch (const std::system_error&) {
      // The system would not start another thread (thread or memory limits): the threads
      // already started, and this one, share the remaining runs.
      const std::lock_guard<std::mutex> lock(mutex);
      --running;
      break;
    }
  }
  work(caller_check);
  {
    std::unique_lock<std::mutex> lock(mutex);
    while (running > 0) {
      if (!poll) {
        all_done.wait(lock, [&] { return running == 0; });
        break;
      }
      if (all_done.wait_for(lock, interval, [&] { return running == 0; })) break;
      lock.unlock();
      if (!stop.load()) poll_now();
      lock.lock();
    }
  }
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

LongRuns simulate_long_runs(const FailureModel& model, int threads) {
  model.validate();
  LongRuns out;
  out.resize(model.runs, static_cast<std::int64_t>(model.class_rates_per_s.size()));
  simulate_long_runs(model, 0, model.runs, threads, out);
  return out;
}

}  // namespace podsim
