// One register_* function per bound area (one file each); module.cpp calls them all, in order.
#pragma once

#include <pybind11/pybind11.h>

void register_topology(pybind11::module_& m);     // topology.cpp: Topology
void register_random(pybind11::module_& m);       // random.cpp: normal_quantile, max_of_normals
void register_engine(pybind11::module_& m);       // engine.cpp: Noise, Engine
void register_failures(pybind11::module_& m);     // failures.cpp: long_runs
void register_collectives(pybind11::module_& m);  // collectives.cpp: collective_time, _phases
void register_requests(pybind11::module_& m);     // requests.cpp: simulate_requests, step_bucket
