// This file implements the C-callable side of the SystemC shim declared in sc_shim.h.
//
// Invariants: libsystemc.so references sc_main, so this object defines a sc_main that is never
// called (switchsim has its own C main and starts simulations through this shim); it lives in
// the same object as sim_sc_version so that linking the shim always brings it in.
#include "sc_shim.h"

#include <systemc>

extern "C" const char *sim_sc_version(void)
{
    return sc_core::sc_version();
}

extern "C" int sc_main(int, char *[])
{
    return 1;
}
