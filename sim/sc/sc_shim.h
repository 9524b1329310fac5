/* This file declares the C interface of the SystemC shim (sim/sc/): the only place where
 * switchsim touches C++. Later engines add their entry points here.
 *
 * Invariants: no C++ exception crosses this interface; every function is callable from C.
 */
#ifndef SWITCHSIM_SIM_SC_SHIM_H
#define SWITCHSIM_SIM_SC_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version string of the SystemC library this program is linked against. */
const char *sim_sc_version(void);

#ifdef __cplusplus
}
#endif

#endif
