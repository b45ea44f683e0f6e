// One register_* function per bound area; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

void register_failures(pybind11::module_& m);
