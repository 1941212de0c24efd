// Multi-scale deformable attention (Deformable-DETR convention): C interface of the CUDA kernels.
//
// Shared by deform_attn_cuda.cu (definitions) and deform_attn_binding.cpp (callers) so that a
// signature change breaks the build instead of silently mismatching an extern "C" symbol.
// Only CUDA headers are included: the kernels compile with a bare CUDA toolkit (no PyTorch),
// which lets CI compile-check them on machines without a GPU.
//
// Layouts (all tensors contiguous, row-major):
//   value               (B, S, M, D)        S = sum_l H_l * W_l, levels concatenated
//   spatial_shapes      (L, 2)  int64       (H_l, W_l), in device memory
//   level_start_index   (L,)    int64       first row of level l in S, in device memory
//   sampling_locations  (B, Q, M, L, P, 2)  normalised (x, y); pixel column j at (j + 0.5) / W
//   attention_weights   (B, Q, M, L, P)
//   output              (B, Q, M * D)
//
// Every launcher enqueues on `stream`, never synchronises, and returns the launch status
// (cudaSuccess, cudaErrorInvalidValue for bad sizes or null pointers, or a launch error).
// Accumulation is float32 for float/half/bfloat16 and float64 for double.
//
// Backward writes all three gradients (grad_value is zeroed by the launcher). For half and
// bfloat16 the value gradient is accumulated with float32 atomics in `grad_value_workspace`
// (B*S*M*D floats, caller-allocated, contents ignored) and cast to the output at the end: half
// atomics would both serialise more and round every partial sum to 11 bits. float and double
// accumulate straight into grad_value and ignore the workspace (may be NULL).

#ifndef DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_CUDA_H_
#define DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_CUDA_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DETRACK_DEFORM_ATTN_DECLARE(SUFFIX, SCALAR)                                        \
  cudaError_t detrack_deform_attn_forward_##SUFFIX(                                       \
      const SCALAR* value, const int64_t* spatial_shapes, const int64_t* level_start_index, \
      const SCALAR* sampling_locations, const SCALAR* attention_weights, SCALAR* output,     \
      int64_t batch, int64_t num_value, int64_t num_heads, int64_t head_dim,                \
      int64_t num_queries, int64_t num_levels, int64_t num_points, cudaStream_t stream);    \
  cudaError_t detrack_deform_attn_backward_##SUFFIX(                                      \
      const SCALAR* grad_output, const SCALAR* value, const int64_t* spatial_shapes,         \
      const int64_t* level_start_index, const SCALAR* sampling_locations,                    \
      const SCALAR* attention_weights, SCALAR* grad_value, float* grad_value_workspace,      \
      SCALAR* grad_sampling_locations, SCALAR* grad_attention_weights, int64_t batch,        \
      int64_t num_value, int64_t num_heads, int64_t head_dim, int64_t num_queries,           \
      int64_t num_levels, int64_t num_points, cudaStream_t stream);

DETRACK_DEFORM_ATTN_DECLARE(f32, float)
DETRACK_DEFORM_ATTN_DECLARE(f64, double)
DETRACK_DEFORM_ATTN_DECLARE(f16, __half)
DETRACK_DEFORM_ATTN_DECLARE(bf16, __nv_bfloat16)

#undef DETRACK_DEFORM_ATTN_DECLARE

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // DETRACK_MODEL_OPS_CSRC_DEFORM_ATTN_CUDA_H_
