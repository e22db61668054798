#!/bin/sh
# Open MPI's build flags for binding.gyp's lmforge_mpi target: `has` prints 1 when mpicc and mpi.h exist
# (else 0, and the MPI addon is not built); `incdirs` and `libs` print what mpicc would pass.
case "$1" in
  has)
    dirs=$(mpicc --showme:incdirs 2>/dev/null) || { echo 0; exit 0; }
    for d in $dirs; do [ -f "$d/mpi.h" ] && { echo 1; exit 0; }; done
    echo 0 ;;
  incdirs) mpicc --showme:incdirs 2>/dev/null || true ;;
  libs) mpicc --showme:link 2>/dev/null || true ;;
esac
