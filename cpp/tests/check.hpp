// Tiny helpers shared by the C++ unit tests: expectations that count passes and failures, a
// closing line "N passed, N failed", a program builder and a common test topology.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <string>
#include <vector>

#include "podsim/engine.hpp"
#include "podsim/program.hpp"
#include "podsim/topology.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define PODSIM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PODSIM_TEST_ASAN 1
#endif
#endif

namespace podsim::test {

inline int passed = 0;
inline int failed = 0;

inline void expect(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// Relative tolerance (absolute when want is 0).
inline void expect_near(double got, double want, const std::string& what, double rel = 1e-12) {
  const bool ok = std::abs(got - want) <= rel * (want == 0.0 ? 1.0 : std::abs(want));
  if (!ok) std::printf("  got %.17g, want %.17g\n", got, want);
  expect(ok, what);
}

// `f()` throws E (and, if `contains` is given, its message contains it).
template <class E, class F>
void expect_throws(F&& f, const std::string& what, const std::string& contains = "") {
  try {
    f();
  } catch (const E& e) {
    const bool ok = std::string(e.what()).find(contains) != std::string::npos;
    if (!ok) std::printf("  message: %s\n", e.what());
    expect(ok, what);
    return;
  } catch (const std::exception& e) {
    std::printf("  threw another exception: %s\n", e.what());
    expect(false, what);
    return;
  }
  std::printf("  did not throw\n");
  expect(false, what);
}

// Runs `f` (returning true on success) in a child process whose address space is limited to
// `limit_bytes` more than the parent's now (not under AddressSanitizer, whose shadow memory
// needs a huge address space: there `f` runs without a limit). A crash or an abort in the
// child is a failure, not the end of the test program.
template <class F>
bool in_child(std::size_t limit_bytes, F&& f) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
#ifndef PODSIM_TEST_ASAN
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    const rlim_t base = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE));
    const rlimit limit{base + limit_bytes, base + limit_bytes};
    setrlimit(RLIMIT_AS, &limit);
#else
    (void)limit_bytes;
#endif
    bool ok = false;
    try {
      ok = f();
    } catch (const std::exception& e) {
      std::printf("  child threw: %s\n", e.what());
    }
    std::fflush(stdout);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
  if (WIFSIGNALED(status)) std::printf("  child killed by signal %d\n", WTERMSIG(status));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

inline int summary() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

// The test cluster: scale-up 400 GB/s and 2 us, scale-out 50 GB/s and 5 us, launch 3 us.
inline constexpr double kUpBw = 400e9, kUpLat = 2e-6, kOutBw = 50e9, kOutLat = 5e-6, kLaunch = 3e-6;

inline Topology topology(std::int64_t devices, std::int64_t domain, std::int64_t pod,
                         double oversubscription = 1.0) {
  return {devices, domain, pod, kUpBw, kUpLat, kOutBw, kOutLat, oversubscription, kLaunch};
}

// Builds a Program op by op, like podsim.ProgramBuilder; each method returns the op index.
struct Builder {
  Program p;
  Builder() {
    p.dep_offsets = {0};
    p.group_offsets = {0};
  }

  std::int32_t group(std::initializer_list<std::int32_t> ranks) {
    return group(std::vector<std::int32_t>(ranks));
  }
  std::int32_t group(const std::vector<std::int32_t>& ranks) {
    p.group_ranks.insert(p.group_ranks.end(), ranks.begin(), ranks.end());
    p.group_offsets.push_back(static_cast<std::int64_t>(p.group_ranks.size()));
    return static_cast<std::int32_t>(p.num_groups() - 1);
  }
  std::int32_t compute(std::int32_t rank, double duration, std::int32_t stream = 0,
                       std::vector<std::int32_t> deps = {}) {
    return add(rank, stream, Kind::Compute, duration, 0.0, -1, -1, -1, 1, deps);
  }
  std::int32_t wait(std::int32_t rank, std::int32_t stream, std::vector<std::int32_t> deps) {
    return add(rank, stream, Kind::Wait, 0.0, 0.0, -1, -1, -1, 1, deps);
  }
  std::int32_t collective(std::int32_t rank, CollectiveOp op, std::int32_t group, double bytes,
                          Algorithm algorithm = Algorithm::Auto, std::int32_t repeat = 1,
                          std::vector<std::int32_t> deps = {}, std::int32_t stream = 1) {
    return add(rank, stream, Kind::Collective, 0.0, bytes, group, static_cast<int>(op),
               static_cast<int>(algorithm), repeat, deps);
  }
  std::int32_t send(std::int32_t rank, std::int32_t peer, double bytes, std::int32_t stream = 1,
                    int tag = -1, std::vector<std::int32_t> deps = {}) {
    return add(rank, stream, Kind::Send, 0.0, bytes, peer, tag, -1, 1, deps);
  }
  std::int32_t recv(std::int32_t rank, std::int32_t peer, double bytes, std::int32_t stream = 1,
                    int tag = -1, std::vector<std::int32_t> deps = {}) {
    return add(rank, stream, Kind::Recv, 0.0, bytes, peer, tag, -1, 1, deps);
  }

  std::int32_t add(std::int32_t rank, std::int32_t stream, Kind kind, double duration, double bytes,
                   std::int32_t peer, int collective, int algorithm, std::int32_t repeat,
                   const std::vector<std::int32_t>& deps) {
    p.rank.push_back(rank);
    p.stream.push_back(stream);
    p.kind.push_back(static_cast<std::int8_t>(kind));
    p.duration.push_back(duration);
    p.bytes.push_back(bytes);
    p.peer.push_back(peer);
    p.collective.push_back(static_cast<std::int8_t>(collective));
    p.algorithm.push_back(static_cast<std::int8_t>(algorithm));
    p.repeat.push_back(repeat);
    p.dep_ops.insert(p.dep_ops.end(), deps.begin(), deps.end());
    p.dep_offsets.push_back(static_cast<std::int64_t>(p.dep_ops.size()));
    return static_cast<std::int32_t>(p.num_ops() - 1);
  }
};

// The makespans {analytical, contention} of `ranks` each running one collective op (`repeat`
// back-to-back instances) on the group of all of them, with nothing else on the network.
inline std::array<double, 2> both_modes(const Topology& t, CollectiveOp op, Algorithm algorithm,
                                        const std::vector<std::int32_t>& ranks, double bytes,
                                        std::int32_t repeat = 1) {
  std::array<double, 2> ends{};
  for (auto mode : {NetworkMode::Analytical, NetworkMode::Contention}) {
    Builder b;
    const std::int32_t g = b.group(ranks);
    for (std::int32_t r : ranks) b.collective(r, op, g, bytes, algorithm, repeat);
    Engine engine(b.p, t, mode);
    engine.advance(1'000'000);
    ends[static_cast<std::size_t>(mode)] = engine.makespan();
  }
  return ends;
}

}  // namespace podsim::test
