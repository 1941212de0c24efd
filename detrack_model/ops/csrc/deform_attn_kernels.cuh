// Multi-scale deformable attention: device code (kernels and their helpers).
//
// Included by deform_attn_cuda.cu, which holds the launchers, and by cpu_emulation.cpp, the
// test harness that runs these same kernels on the CPU (no GPU needed) so their index math is
// checked against the PyTorch reference in every test run. Keep it free of launch syntax and
// of PyTorch; it may use CUDA device intrinsics only through the names the harness emulates:
// atomicAdd, __shfl_down_sync, floorf/floor and the half/bfloat16 conversion intrinsics.
//
// Sampling matches torch.nn.functional.grid_sample(mode='bilinear', padding_mode='zeros',
// align_corners=False) on the grid 2 * loc - 1: a normalised x maps to the continuous pixel
// coordinate x * W - 0.5 (pixel centres at integers), corners outside the map read as zero and
// the remaining corners keep their partial bilinear weights. Where the sampling point sits
// exactly on an integer coordinate the location gradient is the one-sided derivative taken
// towards +inf (the floor() convention), again as grid_sample does.

#ifndef DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_KERNELS_CUH_
#define DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_KERNELS_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace detrack_deform_attn {

constexpr int kThreads = 256;  // a multiple of kWarp: the backward kernel maps warps to work
constexpr int kWarp = 32;
// Grid-stride loops cover anything beyond this; the cap only bounds the launch size.
constexpr int64_t kMaxBlocks = 65535;

// Loads widen to the accumulation type and stores round from it. Explicit intrinsics because
// PyTorch builds CUDA sources with -D__CUDA_NO_HALF_CONVERSIONS__ and friends.
template <typename T>
struct Scalar;

template <>
struct Scalar<float> {
  using acc_t = float;
  using grad_value_t = float;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};

template <>
struct Scalar<double> {
  using acc_t = double;
  using grad_value_t = double;
  static __device__ __forceinline__ double load(double v) { return v; }
  static __device__ __forceinline__ double store(double v) { return v; }
};

template <>
struct Scalar<__half> {
  using acc_t = float;
  using grad_value_t = float;  // the float32 workspace, cast to half after the atomics
  static __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};

template <>
struct Scalar<__nv_bfloat16> {
  using acc_t = float;
  using grad_value_t = float;
  static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 store(float v) {
    return __float2bfloat16_rn(v);
  }
};

__device__ __forceinline__ float acc_floor(float v) { return floorf(v); }
__device__ __forceinline__ double acc_floor(double v) { return floor(v); }

__device__ __forceinline__ void atomic_add(float* address, float v) { atomicAdd(address, v); }

__device__ __forceinline__ void atomic_add(double* address, double v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
  // Native double atomicAdd needs sm_60; older targets get the compare-and-swap loop.
  unsigned long long int* as_ull = reinterpret_cast<unsigned long long int*>(address);
  unsigned long long int old = *as_ull;
  unsigned long long int assumed;
  do {
    assumed = old;
    old = atomicCAS(as_ull, assumed,
                    __double_as_longlong(v + __longlong_as_double(static_cast<long long>(assumed))));
  } while (assumed != old);
#else
  atomicAdd(address, v);
#endif
}

// Lane 0 receives the sum over the warp; every lane of the warp must call it.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Bilinear footprint of one sampling point on one level: corner c (0 = top-left,
// 1 = top-right, 2 = bottom-left, 3 = bottom-right) reads spatial row `row[c]` of the level
// with weight `weight[c]`; row[c] < 0 marks a corner outside the map (zero padding).
template <typename acc_t>
struct Footprint {
  int64_t row[4];
  acc_t weight[4];
  acc_t lh, lw, hh, hw;  // fractional offsets and their complements, kept for the gradients
};

// Returns false when no corner lies inside the map. The comparisons are written so that NaN
// fails them too, and they keep floor() inside [-1, H - 1] x [-1, W - 1] so the conversion to
// int64 below is always in range.
template <typename acc_t>
__device__ __forceinline__ bool footprint(acc_t h_im, acc_t w_im, int64_t height, int64_t width,
                                          Footprint<acc_t>* f) {
  if (!(h_im >= acc_t(-1) && h_im < static_cast<acc_t>(height) && w_im >= acc_t(-1) &&
        w_im < static_cast<acc_t>(width))) {
    return false;
  }
  const acc_t h_floor = acc_floor(h_im);
  const acc_t w_floor = acc_floor(w_im);
  const int64_t h_low = static_cast<int64_t>(h_floor);
  const int64_t w_low = static_cast<int64_t>(w_floor);
  f->lh = h_im - h_floor;
  f->lw = w_im - w_floor;
  f->hh = acc_t(1) - f->lh;
  f->hw = acc_t(1) - f->lw;
  const bool top = h_low >= 0;
  const bool bottom = h_low + 1 < height;
  const bool left = w_low >= 0;
  const bool right = w_low + 1 < width;
  f->row[0] = (top && left) ? h_low * width + w_low : -1;
  f->row[1] = (top && right) ? h_low * width + w_low + 1 : -1;
  f->row[2] = (bottom && left) ? (h_low + 1) * width + w_low : -1;
  f->row[3] = (bottom && right) ? (h_low + 1) * width + w_low + 1 : -1;
  f->weight[0] = f->hh * f->hw;
  f->weight[1] = f->hh * f->lw;
  f->weight[2] = f->lh * f->hw;
  f->weight[3] = f->lh * f->lw;
  return true;
}

// One thread per output element (b, q, m, d); consecutive threads walk d, so the value reads
// of a warp are contiguous and the sampling location reads are broadcasts.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ value, const int64_t* __restrict__ spatial_shapes,
                   const int64_t* __restrict__ level_start_index,
                   const scalar_t* __restrict__ sampling_locations,
                   const scalar_t* __restrict__ attention_weights, scalar_t* __restrict__ output,
                   int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,
                   int64_t num_queries, int64_t num_levels, int64_t num_points) {
  using S = Scalar<scalar_t>;
  using acc_t = typename S::acc_t;
  const int64_t total = batch * num_queries * num_heads * head_dim;
  const int64_t row_stride = num_heads * head_dim;  // elements between spatial positions
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += stride) {
    const int64_t d = n % head_dim;
    const int64_t bqm = n / head_dim;  // flat (b, q, m)
    const int64_t m = bqm % num_heads;
    const int64_t b = bqm / (num_queries * num_heads);
    const scalar_t* value_bmd = value + b * num_value * row_stride + m * head_dim + d;
    int64_t lp = bqm * num_levels * num_points;  // flat (b, q, m, l, p)
    acc_t acc = 0;
    for (int64_t l = 0; l < num_levels; ++l) {
      const int64_t height = spatial_shapes[2 * l];
      const int64_t width = spatial_shapes[2 * l + 1];
      const scalar_t* value_level = value_bmd + level_start_index[l] * row_stride;
      for (int64_t p = 0; p < num_points; ++p, ++lp) {
        const acc_t x = S::load(sampling_locations[2 * lp]);
        const acc_t y = S::load(sampling_locations[2 * lp + 1]);
        Footprint<acc_t> f;
        if (!footprint(y * static_cast<acc_t>(height) - acc_t(0.5),
                       x * static_cast<acc_t>(width) - acc_t(0.5), height, width, &f)) {
          continue;
        }
        acc_t sample = 0;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          if (f.row[c] >= 0) {
            sample += f.weight[c] * S::load(value_level[f.row[c] * row_stride]);
          }
        }
        acc += S::load(attention_weights[lp]) * sample;
      }
    }
    output[n] = S::store(acc);
  }
}

// One warp per (b, q, m): lanes stride over the head's channels, so value reads and the
// grad_value atomics of a warp hit contiguous addresses; the location and weight gradients,
// sums over channels, are reduced with shuffles and written once by lane 0, so every element
// of grad_sampling_locations and grad_attention_weights has exactly one writer (no atomics,
// no zero-initialisation needed). Loop bounds depend only on the warp index, so all 32 lanes
// reach every shuffle together.
template <typename scalar_t, typename grad_value_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ value,
                    const int64_t* __restrict__ spatial_shapes,
                    const int64_t* __restrict__ level_start_index,
                    const scalar_t* __restrict__ sampling_locations,
                    const scalar_t* __restrict__ attention_weights,
                    grad_value_t* __restrict__ grad_value,
                    scalar_t* __restrict__ grad_sampling_locations,
                    scalar_t* __restrict__ grad_attention_weights, int64_t batch,
                    int64_t num_value, int64_t num_heads, int64_t head_dim, int64_t num_queries,
                    int64_t num_levels, int64_t num_points) {
  using S = Scalar<scalar_t>;
  using acc_t = typename S::acc_t;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t num_groups = batch * num_queries * num_heads;
  const int64_t row_stride = num_heads * head_dim;
  const int64_t warp_stride = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  for (int64_t bqm = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       bqm < num_groups; bqm += warp_stride) {
    const int64_t m = bqm % num_heads;
    const int64_t b = bqm / (num_queries * num_heads);
    const int64_t value_offset = b * num_value * row_stride + m * head_dim;
    const scalar_t* value_bm = value + value_offset;
    grad_value_t* grad_value_bm = grad_value + value_offset;
    const scalar_t* grad_output_bqm = grad_output + bqm * head_dim;
    int64_t lp = bqm * num_levels * num_points;
    for (int64_t l = 0; l < num_levels; ++l) {
      const int64_t height = spatial_shapes[2 * l];
      const int64_t width = spatial_shapes[2 * l + 1];
      const int64_t level_offset = level_start_index[l] * row_stride;
      for (int64_t p = 0; p < num_points; ++p, ++lp) {
        const acc_t x = S::load(sampling_locations[2 * lp]);
        const acc_t y = S::load(sampling_locations[2 * lp + 1]);
        const acc_t weight = S::load(attention_weights[lp]);
        acc_t grad_weight = 0;
        acc_t grad_w_im = 0;  // d loss / d (x * W - 0.5), scaled by W below
        acc_t grad_h_im = 0;
        Footprint<acc_t> f;
        if (footprint(y * static_cast<acc_t>(height) - acc_t(0.5),
                      x * static_cast<acc_t>(width) - acc_t(0.5), height, width, &f)) {
          for (int64_t d = lane; d < head_dim; d += kWarp) {
            const acc_t g = S::load(grad_output_bqm[d]);
            acc_t v[4];
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              v[c] = f.row[c] >= 0 ? S::load(value_bm[level_offset + f.row[c] * row_stride + d])
                                   : acc_t(0);
            }
            const acc_t sample =
                f.weight[0] * v[0] + f.weight[1] * v[1] + f.weight[2] * v[2] + f.weight[3] * v[3];
            grad_weight += g * sample;
            const acc_t g_weighted = g * weight;
            grad_w_im += g_weighted * (f.hh * (v[1] - v[0]) + f.lh * (v[3] - v[2]));
            grad_h_im += g_weighted * (f.hw * (v[2] - v[0]) + f.lw * (v[3] - v[1]));
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              if (f.row[c] >= 0) {
                atomic_add(grad_value_bm + level_offset + f.row[c] * row_stride + d,
                           static_cast<grad_value_t>(g_weighted * f.weight[c]));
              }
            }
          }
        }
        grad_weight = warp_sum(grad_weight);
        grad_w_im = warp_sum(grad_w_im);
        grad_h_im = warp_sum(grad_h_im);
        if (lane == 0) {
          grad_attention_weights[lp] = S::store(grad_weight);
          grad_sampling_locations[2 * lp] = S::store(grad_w_im * static_cast<acc_t>(width));
          grad_sampling_locations[2 * lp + 1] = S::store(grad_h_im * static_cast<acc_t>(height));
        }
      }
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    cast_kernel(const float* __restrict__ src, scalar_t* __restrict__ dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dst[i] = Scalar<scalar_t>::store(src[i]);
  }
}

}  // namespace detrack_deform_attn

#endif  // DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_KERNELS_CUH_
