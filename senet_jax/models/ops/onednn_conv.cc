// Direct NHWC convolutions on XLA:CPU through oneDNN, as XLA FFI handlers.
//
// XLA:CPU either runs a k x k convolution through its generic convolution (slow in training)
// or, on our "matmul" path, as im2col + matrix product, which writes every patch to memory.
// oneDNN convolves straight from the NHWC activations, as PyTorch does on CPU. Training
// needs the forward and both gradients (or the kernel's alone, where the input is constant).
// Kernels stay HWIO (flax's layout); where oneDNN wants a blocked layout, a reorder makes it.
// Built and loaded by senet_jax/models/ops/onednn.py.

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// What every handler of the library shares, onednn_matmul.cc's too.
namespace senet {

// One oneDNN call at a time in the process. Each call already spreads over every core with
// its OpenMP team, and XLA runs independent calls (a block's two 1x1 branches, the copies of
// a pmapped step) on different threads at once, where two teams on the same cores slow each
// other down.
std::mutex& onednn_call_lock() {
  static std::mutex lock;
  return lock;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// XLA calls handlers from several threads of its own: each gets its own stream.
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

}  // namespace senet

namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using Type = dnnl::memory::data_type;
using senet::cpu_engine;
using senet::thread_stream;

memory thread_scratchpad(const memory::desc& desc) {
  thread_local std::vector<char> bytes;
  if (bytes.size() < desc.get_size()) bytes.resize(desc.get_size());
  return memory(desc, cpu_engine(), bytes.data());
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Everything that fixes a convolution's primitives: input NHWC, kernel HWIO, strides, pads.
struct Geometry {
  int64_t n, h, w, c, kh, kw, f, sh, sw, pad_top, pad_bottom, pad_left, pad_right;

  int64_t ho() const { return (h + pad_top + pad_bottom - kh) / sh + 1; }
  int64_t wo() const { return (w + pad_left + pad_right - kw) / sw + 1; }
  auto key() const {
    return std::make_tuple(n, h, w, c, kh, kw, f, sh, sw, pad_top, pad_bottom, pad_left,
                           pad_right);
  }
  bool operator<(const Geometry& other) const { return key() < other.key(); }

  memory::desc input() const { return {{n, c, h, w}, Type::f32, Tag::nhwc}; }
  memory::desc output() const { return {{n, f, ho(), wo()}, Type::f32, Tag::nhwc}; }
  memory::desc kernel(Tag tag) const { return {{f, c, kh, kw}, Type::f32, tag}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims pads_before() const { return {pad_top, pad_left}; }
  memory::dims pads_after() const { return {pad_bottom, pad_right}; }
};

bool is_fallback(const char* impl) {
  return std::strstr(impl, "gemm") != nullptr || std::strstr(impl, "ref") != nullptr;
}

// The primitives of one geometry, made once: making them costs more than a small convolution.
struct Plan {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_backward_data::primitive_desc input_grad_pd;
  dnnl::convolution_backward_weights::primitive_desc kernel_grad_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data input_grad;
  dnnl::convolution_backward_weights kernel_grad;

  explicit Plan(const Geometry& g) {
    auto& engine = cpu_engine();
    auto attr = user_scratchpad();
    auto forward_with = [&](Tag kernel_tag) {
      return dnnl::convolution_forward::primitive_desc(
          engine, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
          g.input(), g.kernel(kernel_tag), g.output(), g.strides(), g.pads_before(),
          g.pads_after(), attr);
    };
    // The backward passes want blocked kernels (plain HWIO drops them to a GEMM fallback);
    // the forward often runs as fast on HWIO as given, which saves a reorder per call.
    auto blocked = forward_with(Tag::any);
    auto plain = forward_with(Tag::hwio);
    forward_pd = is_fallback(plain.impl_info_str()) ? blocked : plain;
    input_grad_pd = dnnl::convolution_backward_data::primitive_desc(
        engine, dnnl::algorithm::convolution_direct, g.input(), g.kernel(Tag::any), g.output(),
        g.strides(), g.pads_before(), g.pads_after(), blocked, attr);
    kernel_grad_pd = dnnl::convolution_backward_weights::primitive_desc(
        engine, dnnl::algorithm::convolution_direct, g.input(), g.kernel(Tag::any), g.output(),
        g.strides(), g.pads_before(), g.pads_after(), blocked, attr);
    forward = dnnl::convolution_forward(forward_pd);
    input_grad = dnnl::convolution_backward_data(input_grad_pd);
    kernel_grad = dnnl::convolution_backward_weights(kernel_grad_pd);
  }
};

const Plan& plan_for(const Geometry& g) {
  static std::mutex mutex;
  static std::map<Geometry, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[g];
  if (!plan) plan = std::make_unique<Plan>(g);
  return *plan;
}

void reorder(memory& from, memory& to, dnnl::stream& stream) {
  dnnl::reorder::primitive_desc pd(from, to, user_scratchpad());
  dnnl::reorder(pd).execute(stream, {{DNNL_ARG_FROM, from},
                                     {DNNL_ARG_TO, to},
                                     {DNNL_ARG_SCRATCHPAD, thread_scratchpad(pd.scratchpad_desc())}});
}

// The caller's HWIO kernel in the layout `wanted`: itself, or a reordered copy.
memory kernel_as(const memory::desc& wanted, memory& hwio, dnnl::stream& stream) {
  if (wanted == hwio.get_desc()) return hwio;
  memory blocked(wanted, cpu_engine());
  reorder(hwio, blocked, stream);
  return blocked;
}

ffi::Error checked_geometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> k, int64_t sh,
                            int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                            Geometry* g) {
  if (x.size() != 4 || k.size() != 4 || k[2] != x[3] || sh < 1 || sw < 1) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "onednn convolution: expected an NHWC input, an HWIO kernel with the "
                      "input's channel count and strides >= 1");
  }
  *g = Geometry{x[0], x[1], x[2], x[3], k[0], k[1], k[3], sh, sw, pt, pb, pl, pr};
  return ffi::Error::Success();
}

template <typename Body>
ffi::Error guarded(const char* what, Body&& body) {
  try {
    std::lock_guard<std::mutex> exclusive(senet::onednn_call_lock());
    body();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string(what) + ": oneDNN: " + e.what());
  }
}

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

ffi::Error forward(F32 x, F32 k, F32Out y, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
                   int64_t pl, int64_t pr) {
  Geometry g;
  if (auto e = checked_geometry(x.dimensions(), k.dimensions(), sh, sw, pt, pb, pl, pr, &g);
      e.failure()) {
    return e;
  }
  return guarded("convolution forward", [&] {
    const Plan& p = plan_for(g);
    auto& stream = thread_stream();
    memory input(g.input(), cpu_engine(), x.typed_data());
    memory hwio(g.kernel(Tag::hwio), cpu_engine(), k.typed_data());
    memory output(g.output(), cpu_engine(), y->typed_data());
    memory kernel = kernel_as(p.forward_pd.weights_desc(), hwio, stream);
    p.forward.execute(stream, {{DNNL_ARG_SRC, input},
                               {DNNL_ARG_WEIGHTS, kernel},
                               {DNNL_ARG_DST, output},
                               {DNNL_ARG_SCRATCHPAD,
                                thread_scratchpad(p.forward_pd.scratchpad_desc())}});
    stream.wait();
  });
}

ffi::Error input_grad(F32 dy, F32 k, F32Out dx, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
                      int64_t pl, int64_t pr) {
  Geometry g;
  if (auto e = checked_geometry(dx->dimensions(), k.dimensions(), sh, sw, pt, pb, pl, pr, &g);
      e.failure()) {
    return e;
  }
  return guarded("convolution input gradient", [&] {
    const Plan& p = plan_for(g);
    auto& stream = thread_stream();
    memory output_grad(g.output(), cpu_engine(), dy.typed_data());
    memory hwio(g.kernel(Tag::hwio), cpu_engine(), k.typed_data());
    memory input_grad(g.input(), cpu_engine(), dx->typed_data());
    memory kernel = kernel_as(p.input_grad_pd.weights_desc(), hwio, stream);
    p.input_grad.execute(stream, {{DNNL_ARG_DIFF_DST, output_grad},
                                  {DNNL_ARG_WEIGHTS, kernel},
                                  {DNNL_ARG_DIFF_SRC, input_grad},
                                  {DNNL_ARG_SCRATCHPAD,
                                   thread_scratchpad(p.input_grad_pd.scratchpad_desc())}});
    stream.wait();
  });
}

ffi::Error kernel_grad(F32 x, F32 dy, F32Out dk, int64_t sh, int64_t sw, int64_t pt, int64_t pb,
                       int64_t pl, int64_t pr) {
  Geometry g;
  if (auto e = checked_geometry(x.dimensions(), dk->dimensions(), sh, sw, pt, pb, pl, pr, &g);
      e.failure()) {
    return e;
  }
  return guarded("convolution kernel gradient", [&] {
    const Plan& p = plan_for(g);
    auto& stream = thread_stream();
    memory input(g.input(), cpu_engine(), x.typed_data());
    memory output_grad(g.output(), cpu_engine(), dy.typed_data());
    memory hwio(g.kernel(Tag::hwio), cpu_engine(), dk->typed_data());
    auto wanted = p.kernel_grad_pd.diff_weights_desc();
    memory kernel = wanted == hwio.get_desc() ? hwio : memory(wanted, cpu_engine());
    p.kernel_grad.execute(stream, {{DNNL_ARG_SRC, input},
                                   {DNNL_ARG_DIFF_DST, output_grad},
                                   {DNNL_ARG_DIFF_WEIGHTS, kernel},
                                   {DNNL_ARG_SCRATCHPAD,
                                    thread_scratchpad(p.kernel_grad_pd.scratchpad_desc())}});
    if (kernel != hwio) reorder(kernel, hwio, stream);
    stream.wait();
  });
}

// Both gradients in one call, one after the other. As two calls XLA may run them at once,
// and two oneDNN thread teams on the same cores slow each other down more than they overlap.
ffi::Error grads(F32 x, F32 dy, F32 k, F32Out dx, F32Out dk, int64_t sh, int64_t sw, int64_t pt,
                 int64_t pb, int64_t pl, int64_t pr) {
  if (auto e = input_grad(dy, k, dx, sh, sw, pt, pb, pl, pr); e.failure()) return e;
  return kernel_grad(x, dy, dk, sh, sw, pt, pb, pl, pr);
}

}  // namespace

// The geometry, as attributes of every handler.
#define SENET_CONV_GEOMETRY                                                                  \
      .Attr<int64_t>("stride_h")                                                             \
      .Attr<int64_t>("stride_w")                                                             \
      .Attr<int64_t>("pad_top")                                                              \
      .Attr<int64_t>("pad_bottom")                                                           \
      .Attr<int64_t>("pad_left")                                                             \
      .Attr<int64_t>("pad_right")

// Two f32 operands, one f32 result.
#define SENET_CONV_BINDING ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>() SENET_CONV_GEOMETRY

XLA_FFI_DEFINE_HANDLER_SYMBOL(SenetConvForward, forward, SENET_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SenetConvKernelGrad, kernel_grad, SENET_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SenetConvGrads, grads,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>() SENET_CONV_GEOMETRY);
