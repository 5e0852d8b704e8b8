// What a rank hands to collectives and the wall time it spends in them, per step: StepTotals'
// comm_bytes and comm_s (pipeline/sae/train_step.hpp), kept by the latent-sharded steps of both
// devices.
#pragma once
#include <mpi.h>

namespace saepipe {

struct CommMeter {
  double bytes = 0, seconds = 0;
  // Runs the collective `fn`, adding its time and `b` bytes.
  template <class Fn>
  void timed(double b, Fn&& fn) {
    const double t = MPI_Wtime();
    fn();
    seconds += MPI_Wtime() - t;
    bytes += b;
  }
};

}  // namespace saepipe
