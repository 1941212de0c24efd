// PyTorch binding of the deformable-attention CUDA kernels in deform_attn_cuda.cu.
//
// Checks what the kernels assume (CUDA device, one device, contiguity, dtypes, the shapes
// that can be checked without reading device memory), allocates the outputs and launches on
// PyTorch's current stream. The value-dependent checks (S == sum of H * W, level starts) need
// a device-to-host copy and are done once in Python, in detrack_model/ops/deform_attn.py.
//
// Only compiled on machines with a CUDA build of PyTorch (ATen/cuda is missing from the CPU
// wheel); the kernels themselves include no PyTorch header.

#include <ATen/cuda/CUDAContext.h>
#include <c10/core/DeviceGuard.h>
#include <torch/extension.h>

#include <vector>

#include "deform_attn_cuda.h"

namespace {

// Maps a PyTorch scalar type to its CUDA twin (identical bit layout) and to its launchers.
template <typename T>
struct Launchers;

template <>
struct Launchers<float> {
  using cuda_t = float;
  static constexpr auto forward = &detrack_deform_attn_forward_f32;
  static constexpr auto backward = &detrack_deform_attn_backward_f32;
};

template <>
struct Launchers<double> {
  using cuda_t = double;
  static constexpr auto forward = &detrack_deform_attn_forward_f64;
  static constexpr auto backward = &detrack_deform_attn_backward_f64;
};

template <>
struct Launchers<at::Half> {
  using cuda_t = __half;
  static constexpr auto forward = &detrack_deform_attn_forward_f16;
  static constexpr auto backward = &detrack_deform_attn_backward_f16;
};

template <>
struct Launchers<at::BFloat16> {
  using cuda_t = __nv_bfloat16;
  static constexpr auto forward = &detrack_deform_attn_forward_bf16;
  static constexpr auto backward = &detrack_deform_attn_backward_bf16;
};

template <typename T>
const typename Launchers<T>::cuda_t* in_ptr(const at::Tensor& tensor) {
  return reinterpret_cast<const typename Launchers<T>::cuda_t*>(tensor.data_ptr<T>());
}

template <typename T>
typename Launchers<T>::cuda_t* out_ptr(at::Tensor& tensor) {
  return reinterpret_cast<typename Launchers<T>::cuda_t*>(tensor.data_ptr<T>());
}

struct Sizes {
  int64_t batch, num_value, heads, head_dim, queries, levels, points;
};

void check_on_device(const at::Tensor& tensor, const char* name, const at::Tensor& value) {
  TORCH_CHECK(tensor.is_cuda(), name, " must be a CUDA tensor, got device ", tensor.device());
  TORCH_CHECK(tensor.device() == value.device(), name, " must be on ", value.device(),
              " like value, got ", tensor.device());
  TORCH_CHECK(tensor.is_contiguous(), name, " must be contiguous, got strides ",
              tensor.strides(), " for shape ", tensor.sizes());
}

void check_like_value(const at::Tensor& tensor, const char* name, const at::Tensor& value) {
  check_on_device(tensor, name, value);
  TORCH_CHECK(tensor.scalar_type() == value.scalar_type(), name, " must have the dtype of value (",
              value.scalar_type(), "), got ", tensor.scalar_type());
}

void check_index(const at::Tensor& tensor, const char* name, const at::Tensor& value) {
  check_on_device(tensor, name, value);
  TORCH_CHECK(tensor.scalar_type() == at::kLong, name, " must be int64, got ",
              tensor.scalar_type());
}

Sizes check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                   const at::Tensor& attention_weights) {
  TORCH_CHECK(value.is_cuda(), "value must be a CUDA tensor, got device ", value.device());
  TORCH_CHECK(value.dim() == 4, "value must be 4-D (B, S, M, D), got shape ", value.sizes());
  const auto dtype = value.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "value must be float32, float64, float16 or bfloat16, got ", dtype);
  check_like_value(value, "value", value);
  check_like_value(sampling_locations, "sampling_locations", value);
  check_like_value(attention_weights, "attention_weights", value);
  check_index(spatial_shapes, "spatial_shapes", value);
  check_index(level_start_index, "level_start_index", value);

  TORCH_CHECK(sampling_locations.dim() == 6,
              "sampling_locations must be 6-D (B, Q, M, L, P, 2), got shape ",
              sampling_locations.sizes());
  const Sizes s{value.size(0),
                value.size(1),
                value.size(2),
                value.size(3),
                sampling_locations.size(1),
                sampling_locations.size(3),
                sampling_locations.size(4)};
  TORCH_CHECK(sampling_locations.size(0) == s.batch && sampling_locations.size(2) == s.heads &&
                  sampling_locations.size(5) == 2,
              "sampling_locations must have shape (B, Q, M, L, P, 2) = (", s.batch, ", Q, ",
              s.heads, ", L, P, 2) to match value ", value.sizes(), ", got ",
              sampling_locations.sizes());
  const std::vector<int64_t> weights_shape{s.batch, s.queries, s.heads, s.levels, s.points};
  TORCH_CHECK(attention_weights.sizes() == at::IntArrayRef(weights_shape),
              "attention_weights must have shape (B, Q, M, L, P) = ", at::IntArrayRef(weights_shape),
              ", got ", attention_weights.sizes());
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(0) == s.levels &&
                  spatial_shapes.size(1) == 2,
              "spatial_shapes must have shape (L, 2) = (", s.levels, ", 2), got ",
              spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == s.levels,
              "level_start_index must have shape (L,) = (", s.levels, ",), got ",
              level_start_index.sizes());
  return s;
}

void check_status(cudaError_t status, const char* what) {
  TORCH_CHECK(status == cudaSuccess, "deformable attention ", what,
              " launch failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

at::Tensor forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                   const at::Tensor& attention_weights) {
  const Sizes s =
      check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const c10::DeviceGuard guard(value.device());
  at::Tensor output = at::empty({s.batch, s.queries, s.heads * s.head_dim}, value.options());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(value.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "detrack_deform_attn_forward", [&] {
        check_status(Launchers<scalar_t>::forward(
                         in_ptr<scalar_t>(value), spatial_shapes.data_ptr<int64_t>(),
                         level_start_index.data_ptr<int64_t>(),
                         in_ptr<scalar_t>(sampling_locations), in_ptr<scalar_t>(attention_weights),
                         out_ptr<scalar_t>(output), s.batch, s.num_value, s.heads, s.head_dim,
                         s.queries, s.levels, s.points, stream),
                     "forward");
      });
  return output;
}

std::vector<at::Tensor> backward(const at::Tensor& grad_output, const at::Tensor& value,
                                 const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index,
                                 const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights) {
  const Sizes s =
      check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  check_like_value(grad_output, "grad_output", value);
  const std::vector<int64_t> output_shape{s.batch, s.queries, s.heads * s.head_dim};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(output_shape),
              "grad_output must have shape (B, Q, M * D) = ", at::IntArrayRef(output_shape),
              ", got ", grad_output.sizes());
  const c10::DeviceGuard guard(value.device());
  at::Tensor grad_value = at::empty_like(value, at::MemoryFormat::Contiguous);
  at::Tensor grad_locations = at::empty_like(sampling_locations, at::MemoryFormat::Contiguous);
  at::Tensor grad_weights = at::empty_like(attention_weights, at::MemoryFormat::Contiguous);
  // Half and bfloat16 value gradients are summed in float32 (see deform_attn_cuda.h); the
  // workspace comes from the caching allocator on this stream, so freeing it on return is
  // safe: later users of the block are ordered after the kernels on the same stream.
  at::Tensor workspace;
  float* workspace_ptr = nullptr;
  if (value.scalar_type() == at::kHalf || value.scalar_type() == at::kBFloat16) {
    workspace = at::empty(value.sizes(), value.options().dtype(at::kFloat));
    workspace_ptr = workspace.data_ptr<float>();
  }
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(value.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "detrack_deform_attn_backward", [&] {
        check_status(Launchers<scalar_t>::backward(
                         in_ptr<scalar_t>(grad_output), in_ptr<scalar_t>(value),
                         spatial_shapes.data_ptr<int64_t>(),
                         level_start_index.data_ptr<int64_t>(),
                         in_ptr<scalar_t>(sampling_locations), in_ptr<scalar_t>(attention_weights),
                         out_ptr<scalar_t>(grad_value), workspace_ptr,
                         out_ptr<scalar_t>(grad_locations), out_ptr<scalar_t>(grad_weights),
                         s.batch, s.num_value, s.heads, s.head_dim, s.queries, s.levels,
                         s.points, stream),
                     "backward");
      });
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Multi-scale deformable attention CUDA kernels (detrack_model.ops)";
  m.def("forward", &forward,
        "Deformable attention forward: (B, Q, M * D) output, same dtype and device as value",
        py::arg("value"), py::arg("spatial_shapes"), py::arg("level_start_index"),
        py::arg("sampling_locations"), py::arg("attention_weights"));
  m.def("backward", &backward,
        "Deformable attention backward: [grad_value, grad_sampling_locations, "
        "grad_attention_weights]",
        py::arg("grad_output"), py::arg("value"), py::arg("spatial_shapes"),
        py::arg("level_start_index"), py::arg("sampling_locations"),
        py::arg("attention_weights"));
}
