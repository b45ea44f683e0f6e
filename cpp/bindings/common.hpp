// Helpers the binding files share: numpy columns in and out, enum arguments, programs.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "podsim/errors.hpp"
#include "podsim/program.hpp"

namespace podsim::bindings {

namespace py = pybind11;

// Copies a 1-D numpy column of exactly dtype T; anything else is a ProgramError naming it
// (`prefix` + name: "program.rank", "copies.ranks").
template <class T>
std::vector<T> column(const py::array& array, const char* name, const char* prefix = "program.") {
  if (!array.dtype().is(py::dtype::of<T>()) || array.ndim() != 1) {
    throw ProgramError(std::string(prefix) + name + " must be a 1-D array of " +
                       std::string(py::str(py::dtype::of<T>())) + ", got " +
                       std::string(py::str(array.dtype())) + " with " +
                       std::to_string(array.ndim()) + " dimension(s)");
  }
  const auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(array);
  return {typed.data(), typed.data() + typed.size()};
}

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& values) {
  return py::array_t<T>(static_cast<py::ssize_t>(values.size()), values.data());
}

// An int argument as enum E with `count` values; out of range is a SpecError naming it.
template <class E>
E enum_arg(int value, int count, const char* name) {
  if (value < 0 || value >= count) {
    throw SpecError(std::string(name) + " = " + std::to_string(value) + " is outside [0, " +
                    std::to_string(count) + ")");
  }
  return static_cast<E>(value);
}

// The program from its columns (podsim.program.Program's fields by name), dtypes checked;
// `consume`: each column is removed from the dict once copied.
Program make_program(const py::dict& columns, bool consume = false);

}  // namespace podsim::bindings
