// podsim._core: a thin layer over the engine (private: use the podsim package). This file only
// maps the engine's errors to podsim.errors and registers the areas, one file each.
#include <pybind11/pybind11.h>

#include <exception>

#include "podsim/errors.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace {

void raise(const char* name, const char* message) {
  const py::object cls = py::module_::import("podsim.errors").attr(name);
  PyErr_SetString(cls.ptr(), message);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "podsim's C++ engine (private: use the podsim package)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const podsim::SpecError& e) {
      raise("SpecError", e.what());
    } catch (const podsim::ProgramError& e) {
      raise("ProgramError", e.what());
    } catch (const podsim::DeadlockError& e) {
      raise("DeadlockError", e.what());
    }
  });

  // Classes before the functions that take them, so that signatures name them.
  register_topology(m);
  register_random(m);
  register_engine(m);
  register_failures(m);
  register_collectives(m);
  register_requests(m);
}
