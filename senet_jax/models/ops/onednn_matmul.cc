// Row-major float32 matrix products on XLA:CPU through oneDNN, as XLA FFI handlers.
//
// A 1x1 convolution is the product [N*H*W, C] x [C, F]. XLA:CPU runs its forward and input
// gradient through YNNPACK, and its kernel gradient, which contracts the leading axis of both
// operands, through Eigen, which packs each block before multiplying it. oneDNN measured
// faster on all three products (benchmarks/RESULTS.md): its matmul primitive where the left
// operand is read as stored (the forward, the input gradient), its sgemm where it is read
// transposed (the kernel gradient), for which the primitive has no fast kernel.
// Built into the same library as onednn_conv.cc, whose engine, streams and call lock it uses.

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace senet {  // defined in onednn_conv.cc
std::mutex& onednn_call_lock();
dnnl::engine& cpu_engine();
dnnl::stream& thread_stream();
}  // namespace senet

namespace {

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

// The dimensions of one operand as used: rows x cols of op(X), where op transposes on request.
struct Used {
  int64_t rows, cols;
};

ffi::Error used(ffi::Span<const int64_t> dims, bool transposed, const char* name, Used* out) {
  if (dims.size() != 2) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      std::string("onednn matmul: ") + name + " must be 2-D");
  }
  *out = transposed ? Used{dims[1], dims[0]} : Used{dims[0], dims[1]};
  return ffi::Error::Success();
}

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using senet::cpu_engine;

// The matmul primitive for [m, k] x op(b)[k, n], made once per shape (making one takes
// longer than running it).
struct Product {
  memory::desc a, b, c;
  dnnl::matmul primitive;
};

const Product& product_for(int64_t m, int64_t n, int64_t k, bool tb) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Product>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[{m, n, k, tb}];
  if (!entry) {
    const auto f32 = memory::data_type::f32;
    memory::desc a({m, k}, f32, Tag::ab), b({k, n}, f32, tb ? Tag::ba : Tag::ab);
    memory::desc c({m, n}, f32, Tag::ab);
    dnnl::matmul::primitive_desc pd(cpu_engine(), a, b, c);
    entry.reset(new Product{a, b, c, dnnl::matmul(pd)});
  }
  return *entry;
}

// c[m, n] = op(a)[m, k] op(b)[k, n], every matrix row-major and densely packed.
ffi::Error gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a,
                const float* b, float* c) {
  if (m == 0 || n == 0) return ffi::Error::Success();
  if (k == 0) {
    std::memset(c, 0, sizeof(float) * m * n);
    return ffi::Error::Success();
  }
  std::lock_guard<std::mutex> exclusive(senet::onednn_call_lock());
  if (!ta) {
    try {
      const Product& p = product_for(m, n, k, tb);
      dnnl::stream& stream = senet::thread_stream();
      memory am(p.a, cpu_engine(), const_cast<float*>(a));
      memory bm(p.b, cpu_engine(), const_cast<float*>(b));
      memory cm(p.c, cpu_engine(), c);
      p.primitive.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
      stream.wait();
    } catch (const dnnl::error& e) {
      return ffi::Error(ffi::ErrorCode::kInternal, std::string("onednn matmul: ") + e.what());
    }
    return ffi::Error::Success();
  }
  const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a,
                                          ta ? m : k, b, tb ? k : n, 0.0f, c, n);
  if (status != dnnl_success) {
    return ffi::Error(ffi::ErrorCode::kInternal,
                      "onednn matmul: dnnl_sgemm returned status " + std::to_string(status));
  }
  return ffi::Error::Success();
}

ffi::Error matmul(F32 a, F32 b, F32Out c, bool transpose_a, bool transpose_b) {
  Used ua, ub;
  if (auto e = used(a.dimensions(), transpose_a, "a", &ua); e.failure()) return e;
  if (auto e = used(b.dimensions(), transpose_b, "b", &ub); e.failure()) return e;
  auto cd = c->dimensions();
  if (ua.cols != ub.rows || cd.size() != 2 || cd[0] != ua.rows || cd[1] != ub.cols) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "onednn matmul: operand and result shapes do not chain");
  }
  return gemm(transpose_a, transpose_b, ua.rows, ub.cols, ua.cols, a.typed_data(),
              b.typed_data(), c->typed_data());
}

// Both gradients of c = a b in one call: da = dc b^T, db = a^T dc. As two calls XLA may run
// them at once, and two OpenMP teams on the same cores slow each other down.
ffi::Error grads(F32 a, F32 b, F32 dc, F32Out da, F32Out db) {
  auto ad = a.dimensions(), bd = b.dimensions(), cd = dc.dimensions();
  if (ad.size() != 2 || bd.size() != 2 || cd.size() != 2 || ad[1] != bd[0] ||
      cd[0] != ad[0] || cd[1] != bd[1]) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "onednn matmul gradients: expected a [m, k], b [k, n], dc [m, n]");
  }
  const int64_t m = ad[0], k = ad[1], n = bd[1];
  if (auto e = gemm(false, true, m, k, n, dc.typed_data(), b.typed_data(), da->typed_data());
      e.failure()) {
    return e;
  }
  return gemm(true, false, k, n, m, a.typed_data(), dc.typed_data(), db->typed_data());
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SenetMatmul, matmul,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Attr<bool>("transpose_a")
                                  .Attr<bool>("transpose_b"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(SenetMatmulGrads, grads,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>());
