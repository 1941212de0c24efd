// Test harness: runs the CUDA kernels of deform_attn_kernels.cuh on the CPU.
//
// Most machines that run the tests have a CUDA toolkit but no GPU, so without this the
// kernels' index math, bounds checks and warp reductions would only ever execute on the rare
// GPU run. Here the very same kernel source is compiled by the host compiler and each CUDA
// thread becomes a call (forward: one after another) or an OS thread (backward: the 32 lanes
// of a warp run concurrently so that __shfl_down_sync can be emulated with a barrier).
// test/model/test_deform_attn_emulated.py builds it with g++ and compares it with the PyTorch
// reference. It is not part of the extension build.
//
// What it cannot show: timing, memory coalescing, real atomics, the launchers in
// deform_attn_cuda.cu (zeroing, the half/bfloat16 cast step, grid sizes) and anything
// architecture-specific. A warp whose lanes do not all reach a shuffle (divergent control
// flow, which deadlocks or misbehaves on a GPU) is reported as a failure instead of hanging.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// The CUDA headers define these execution-space keywords for the host compiler in ways that
// do not turn a kernel into a callable function; plain functions are what the harness needs.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)

namespace {

struct EmulatedDim {
  unsigned int x = 0;
};

// Block and grid sizes are set before any emulated thread starts, so plain globals suffice.
thread_local EmulatedDim threadIdx;
thread_local EmulatedDim blockIdx;
EmulatedDim blockDim;
EmulatedDim gridDim;

std::mutex atomic_mutex;

float atomicAdd(float* address, float v) {
  const std::lock_guard<std::mutex> lock(atomic_mutex);
  const float old = *address;
  *address = old + v;
  return old;
}

double atomicAdd(double* address, double v) {
  const std::lock_guard<std::mutex> lock(atomic_mutex);
  const double old = *address;
  *address = old + v;
  return old;
}

constexpr int kLanes = 32;

struct WarpSync {
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  double slots[kLanes] = {};
};

std::atomic<bool> divergence{false};
thread_local WarpSync* this_warp = nullptr;

// All 32 lanes must arrive; a lane left waiting for 10 s means some lane skipped the shuffle.
void warp_barrier(WarpSync* warp) {
  std::unique_lock<std::mutex> lock(warp->mutex);
  const uint64_t generation = warp->generation;
  if (++warp->arrived == kLanes) {
    warp->arrived = 0;
    ++warp->generation;
    warp->cv.notify_all();
    return;
  }
  if (!warp->cv.wait_for(lock, std::chrono::seconds(10), [&] {
        return warp->generation != generation || divergence.load();
      })) {
    divergence = true;
  }
}

// Both float and double round-trip exactly through a double slot.
template <typename T>
T __shfl_down_sync(unsigned int /*mask*/, T value, int delta) {
  WarpSync* warp = this_warp;
  const int lane = static_cast<int>(threadIdx.x % kLanes);
  warp->slots[lane] = static_cast<double>(value);
  warp_barrier(warp);
  const int source = lane + delta;
  const T result = source < kLanes ? static_cast<T>(warp->slots[source]) : value;
  warp_barrier(warp);
  return result;
}

}  // namespace

#include "deform_attn_kernels.cuh"

namespace {

template <typename Body>
void run_sequential(unsigned int grid, unsigned int block, Body body) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned int b = 0; b < grid; ++b) {
    for (unsigned int t = 0; t < block; ++t) {
      blockIdx.x = b;
      threadIdx.x = t;
      body();
    }
  }
}

template <typename Body>
int run_threaded(unsigned int grid, unsigned int block, Body body) {
  if (block == 0 || block % kLanes != 0) {
    return 2;
  }
  divergence = false;
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned int b = 0; b < grid; ++b) {
    std::unique_ptr<WarpSync[]> warps(new WarpSync[block / kLanes]);
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned int t = 0; t < block; ++t) {
      threads.emplace_back([&, b, t] {
        blockIdx.x = b;
        threadIdx.x = t;
        this_warp = &warps[t / kLanes];
        body();
      });
    }
    for (std::thread& thread : threads) {
      thread.join();
    }
  }
  return divergence ? 1 : 0;
}

}  // namespace

// C entry points for ctypes: pointers are untyped so one signature serves every dtype; the
// grad_value accumulator is float for float/half/bfloat16 and double for double, as in
// deform_attn_cuda.cu. Return 0 on success, 1 on warp divergence, 2 on a bad block size.
#define DETRACK_EMULATE(SUFFIX, SCALAR)                                                        \
  extern "C" int emu_forward_##SUFFIX(                                                        \
      const void* value, const int64_t* spatial_shapes, const int64_t* level_start_index,        \
      const void* sampling_locations, const void* attention_weights, void* output,               \
      int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,                    \
      int64_t num_queries, int64_t num_levels, int64_t num_points, unsigned int grid,           \
      unsigned int block) {                                                                     \
    run_sequential(grid, block, [&] {                                                           \
      detrack_deform_attn::forward_kernel<SCALAR>(                                              \
          static_cast<const SCALAR*>(value), spatial_shapes, level_start_index,                 \
          static_cast<const SCALAR*>(sampling_locations),                                       \
          static_cast<const SCALAR*>(attention_weights), static_cast<SCALAR*>(output), batch,   \
          num_value, num_heads, head_dim, num_queries, num_levels, num_points);                 \
    });                                                                                         \
    return 0;                                                                                   \
  }                                                                                             \
  extern "C" int emu_backward_##SUFFIX(                                                       \
      const void* grad_output, const void* value, const int64_t* spatial_shapes,                \
      const int64_t* level_start_index, const void* sampling_locations,                          \
      const void* attention_weights, void* grad_value_accumulator,                               \
      void* grad_sampling_locations, void* grad_attention_weights, int64_t batch,                \
      int64_t num_value, int64_t num_heads, int64_t head_dim, int64_t num_queries,               \
      int64_t num_levels, int64_t num_points, unsigned int grid, unsigned int block) {          \
    using grad_value_t = detrack_deform_attn::Scalar<SCALAR>::grad_value_t;                     \
    return run_threaded(grid, block, [&] {                                                      \
      detrack_deform_attn::backward_kernel<SCALAR, grad_value_t>(                               \
          static_cast<const SCALAR*>(grad_output), static_cast<const SCALAR*>(value),           \
          spatial_shapes, level_start_index, static_cast<const SCALAR*>(sampling_locations),    \
          static_cast<const SCALAR*>(attention_weights),                                        \
          static_cast<grad_value_t*>(grad_value_accumulator),                                   \
          static_cast<SCALAR*>(grad_sampling_locations),                                        \
          static_cast<SCALAR*>(grad_attention_weights), batch, num_value, num_heads, head_dim,  \
          num_queries, num_levels, num_points);                                                 \
    });                                                                                         \
  }                                                                                             \
  extern "C" int emu_cast_##SUFFIX(const float* source, void* target, int64_t n,              \
                                   unsigned int grid, unsigned int block) {                     \
    run_sequential(grid, block, [&] {                                                           \
      detrack_deform_attn::cast_kernel<SCALAR>(source, static_cast<SCALAR*>(target), n);        \
    });                                                                                         \
    return 0;                                                                                   \
  }

DETRACK_EMULATE(f32, float)
DETRACK_EMULATE(f64, double)
DETRACK_EMULATE(f16, __half)
DETRACK_EMULATE(bf16, __nv_bfloat16)

#undef DETRACK_EMULATE
