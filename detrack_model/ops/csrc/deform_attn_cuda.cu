// Multi-scale deformable attention: launchers of the CUDA kernels.
//
// Interface, layouts and the gradient-accumulation policy are documented in deform_attn_cuda.h,
// the kernels and the sampling convention in deform_attn_kernels.cuh. CUDA headers only (no
// PyTorch), so `nvcc -c` can check this file on any machine with a CUDA toolkit; the PyTorch
// binding lives in deform_attn_binding.cpp.

#include "deform_attn_cuda.h"

#include <type_traits>

#include "deform_attn_kernels.cuh"

namespace {

using detrack_deform_attn::backward_kernel;
using detrack_deform_attn::cast_kernel;
using detrack_deform_attn::forward_kernel;
using detrack_deform_attn::kMaxBlocks;
using detrack_deform_attn::kThreads;
using detrack_deform_attn::kWarp;
using detrack_deform_attn::Scalar;

unsigned int blocks_for(int64_t threads) {
  int64_t blocks = (threads + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return static_cast<unsigned int>(blocks);
}

bool sizes_valid(int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,
                 int64_t num_queries, int64_t num_levels, int64_t num_points) {
  return batch >= 0 && num_value >= 0 && num_heads >= 0 && head_dim >= 0 && num_queries >= 0 &&
         num_levels >= 0 && num_points >= 0;
}

template <typename scalar_t>
cudaError_t forward_impl(const scalar_t* value, const int64_t* spatial_shapes,
                         const int64_t* level_start_index, const scalar_t* sampling_locations,
                         const scalar_t* attention_weights, scalar_t* output, int64_t batch,
                         int64_t num_value, int64_t num_heads, int64_t head_dim,
                         int64_t num_queries, int64_t num_levels, int64_t num_points,
                         cudaStream_t stream) {
  if (!sizes_valid(batch, num_value, num_heads, head_dim, num_queries, num_levels, num_points)) {
    return cudaErrorInvalidValue;
  }
  const int64_t total = batch * num_queries * num_heads * head_dim;
  if (total == 0) {
    return cudaSuccess;  // a zero-sized grid is an invalid launch, and there is nothing to do
  }
  const bool sampled = num_levels * num_points > 0;
  if (output == nullptr ||
      (sampled && (value == nullptr || spatial_shapes == nullptr ||
                   level_start_index == nullptr || sampling_locations == nullptr ||
                   attention_weights == nullptr))) {
    return cudaErrorInvalidValue;
  }
  forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
      value, spatial_shapes, level_start_index, sampling_locations, attention_weights, output,
      batch, num_value, num_heads, head_dim, num_queries, num_levels, num_points);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t backward_impl(const scalar_t* grad_output, const scalar_t* value,
                          const int64_t* spatial_shapes, const int64_t* level_start_index,
                          const scalar_t* sampling_locations, const scalar_t* attention_weights,
                          scalar_t* grad_value, float* grad_value_workspace,
                          scalar_t* grad_sampling_locations, scalar_t* grad_attention_weights,
                          int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,
                          int64_t num_queries, int64_t num_levels, int64_t num_points,
                          cudaStream_t stream) {
  using grad_value_t = typename Scalar<scalar_t>::grad_value_t;
  // float and double accumulate in place; half and bfloat16 go through the float workspace.
  constexpr bool in_place = std::is_same<grad_value_t, scalar_t>::value;
  if (!sizes_valid(batch, num_value, num_heads, head_dim, num_queries, num_levels, num_points)) {
    return cudaErrorInvalidValue;
  }
  const int64_t value_numel = batch * num_value * num_heads * head_dim;
  const int64_t num_groups = batch * num_queries * num_heads;
  const int64_t num_sampled = num_groups * num_levels * num_points;

  grad_value_t* accumulator = nullptr;
  if constexpr (in_place) {
    accumulator = grad_value;
  } else {
    accumulator = grad_value_workspace;
  }
  if (value_numel > 0 && (grad_value == nullptr || accumulator == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if (num_sampled > 0 &&
      (grad_output == nullptr || value == nullptr || spatial_shapes == nullptr ||
       level_start_index == nullptr || sampling_locations == nullptr ||
       attention_weights == nullptr || grad_sampling_locations == nullptr ||
       grad_attention_weights == nullptr)) {
    return cudaErrorInvalidValue;
  }

  if (value_numel > 0) {
    const cudaError_t status = cudaMemsetAsync(
        accumulator, 0, static_cast<size_t>(value_numel) * sizeof(grad_value_t), stream);
    if (status != cudaSuccess) {
      return status;
    }
  }
  if (num_sampled > 0) {
    backward_kernel<scalar_t, grad_value_t><<<blocks_for(num_groups * kWarp), kThreads, 0,
                                              stream>>>(
        grad_output, value, spatial_shapes, level_start_index, sampling_locations,
        attention_weights, accumulator, grad_sampling_locations, grad_attention_weights, batch,
        num_value, num_heads, head_dim, num_queries, num_levels, num_points);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      return status;
    }
  }
  if constexpr (!in_place) {
    if (value_numel > 0) {
      cast_kernel<scalar_t><<<blocks_for(value_numel), kThreads, 0, stream>>>(
          grad_value_workspace, grad_value, value_numel);
    }
  }
  return cudaGetLastError();
}

}  // namespace

#define DETRACK_DEFORM_ATTN_DEFINE(SUFFIX, SCALAR)                                             \
  cudaError_t detrack_deform_attn_forward_##SUFFIX(                                           \
      const SCALAR* value, const int64_t* spatial_shapes, const int64_t* level_start_index,     \
      const SCALAR* sampling_locations, const SCALAR* attention_weights, SCALAR* output,         \
      int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,                    \
      int64_t num_queries, int64_t num_levels, int64_t num_points, cudaStream_t stream) {       \
    return forward_impl<SCALAR>(value, spatial_shapes, level_start_index, sampling_locations,   \
                                attention_weights, output, batch, num_value, num_heads,         \
                                head_dim, num_queries, num_levels, num_points, stream);         \
  }                                                                                             \
  cudaError_t detrack_deform_attn_backward_##SUFFIX(                                          \
      const SCALAR* grad_output, const SCALAR* value, const int64_t* spatial_shapes,             \
      const int64_t* level_start_index, const SCALAR* sampling_locations,                        \
      const SCALAR* attention_weights, SCALAR* grad_value, float* grad_value_workspace,          \
      SCALAR* grad_sampling_locations, SCALAR* grad_attention_weights, int64_t batch,            \
      int64_t num_value, int64_t num_heads, int64_t head_dim, int64_t num_queries,               \
      int64_t num_levels, int64_t num_points, cudaStream_t stream) {                            \
    return backward_impl<SCALAR>(grad_output, value, spatial_shapes, level_start_index,         \
                                 sampling_locations, attention_weights, grad_value,             \
                                 grad_value_workspace, grad_sampling_locations,                 \
                                 grad_attention_weights, batch, num_value, num_heads, head_dim, \
                                 num_queries, num_levels, num_points, stream);                  \
  }

extern "C" {
DETRACK_DEFORM_ATTN_DEFINE(f32, float)
DETRACK_DEFORM_ATTN_DEFINE(f64, double)
DETRACK_DEFORM_ATTN_DEFINE(f16, __half)
DETRACK_DEFORM_ATTN_DEFINE(bf16, __nv_bfloat16)
}  // extern "C"

#undef DETRACK_DEFORM_ATTN_DEFINE
