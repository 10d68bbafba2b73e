// A whole LSTM recurrence as one TensorFlow CPU op, forward and backward.
//
// Gate by gate, an LSTM step is 17 TensorFlow ops forward and 21 more backward; run one by one on
// a 2-core CPU they cost about a quarter of the layer's time. These two ops run all steps in C++:
// each thread takes a slice of the batch through every step (the slices never meet, so the
// threads never wait for each other), with Eigen's matrix products and vectorised tanh.
//
// Layout (Keras' own): gates i, f, c, o side by side along the last axis; kernel [units, 4 units].
//   TfseqLstm(projected [T, B, 4U] = x_t @ W, bias [4U], h0 [B, U], c0 [B, U], kernel [U, 4U],
//             mask [T, B] or [0] (none); zero_output_for_mask)
//     -> h_seq, c_seq [T, B, U] (states), gates [T, B, 4U] (activations), h_last, c_last [B, U]
//        (final states), out_seq [T, B, U], out_last [B, U] (outputs; the states without a mask)
//   TfseqLstmGrad(h0, c0, kernel, h_seq, c_seq, gates, mask, d_out [T, B, U] or [B, U] (last
//                 output only), dh_last, dc_last [B, U]; zero_output_for_mask)
//     -> d_projected, d_bias, dh0, dc0, d_kernel
// Masks follow Keras: at a masked step the states carry over and the output repeats the previous
// output (zeros before the first step), or is zero with zero_output_for_mask.
// Built and loaded by tfseq/models/fused_lstm.py.
#define EIGEN_USE_THREADS
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <Eigen/Core>
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/ThreadPool"

namespace tensorflow {
namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix, 0, Eigen::OuterStride<>>;
using ConstMatrixMap = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
using Array = Eigen::Map<Eigen::ArrayXf>;
using ConstArray = Eigen::Map<const Eigen::ArrayXf>;

// Fewer rows per thread than this and the products lose more than a second thread gains.
constexpr int64_t kMinRowsPerThread = 16;

int Cores() {
  static const int cores = [] {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return cores;
}

// The threads a call may use: its `threads` attribute (tfseq passes the CPUs the process may
// use, after cgroup quotas and TensorFlow's intra-op setting), else every core of the affinity
// mask. The helper pool is sized by the first call and never grows: a container limited to 2
// CPUs on a 64-core host starts one helper, not 63.
int PoolThreads(int requested) {
  static const int threads = requested > 0 ? std::min(requested, Cores()) : Cores();
  return threads;
}

Eigen::ThreadPool* Helpers() {
  static Eigen::ThreadPool* pool = PoolThreads(0) > 1 ? new Eigen::ThreadPool(PoolThreads(0) - 1) : nullptr;
  return pool;
}

// Runs fn(0) ... fn(shards - 1). The calling thread claims shards too, so a helper that starts
// late (busy with another op's shard) finds nothing left and costs nothing. Returns false when a
// shard threw (an allocation failed): every shard has then still finished or been skipped, so
// nothing outlives the caller's frame.
template <class Fn>
bool ParallelFor(int shards, const Fn& fn) {
  struct State {
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    int shards = 0;
    int done = 0;
    std::mutex mu;
    std::condition_variable cv;
    std::function<void(int)> fn;
  };
  auto state = std::make_shared<State>();
  state->shards = shards;
  state->fn = fn;
  auto work = [](const std::shared_ptr<State>& st) {
    int finished = 0;
    for (int s; (s = st->next.fetch_add(1)) < st->shards; ++finished) {
      try {
        if (!st->failed.load()) st->fn(s);
      } catch (...) {
        st->failed.store(true);
      }
    }
    if (finished == 0) return;
    std::lock_guard<std::mutex> lock(st->mu);
    st->done += finished;
    if (st->done == st->shards) st->cv.notify_all();
  };
  if (Helpers() != nullptr)
    for (int h = 1; h < shards; ++h) Helpers()->Schedule([state, work] { work(state); });
  work(state);
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done == state->shards; });
  return !state->failed.load();
}

int Shards(int64_t rows) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(PoolThreads(0), rows / kMinRowsPerThread)));
}

inline int64_t Split(int64_t n, int parts, int part) { return n * part / parts; }

// sigmoid(x) = (1 + tanh(x / 2)) / 2: Eigen vectorises tanh for float.
template <class X>
inline auto Sigmoid(const X& x) {
  return 0.5f + 0.5f * (0.5f * x).tanh();
}

Status CheckShapes(const Tensor& seq, const Tensor& h0, const Tensor& c0, const Tensor& kernel,
                   const Tensor& mask) {
  if (seq.dims() != 3 || h0.dims() != 2 || c0.dims() != 2 || kernel.dims() != 2)
    return errors::InvalidArgument("TfseqLstm: expected ranks 3, 2, 2 and 2");
  const int64_t batch = seq.dim_size(1), units = kernel.dim_size(0);
  if (kernel.dim_size(1) != 4 * units || seq.dim_size(2) != 4 * units || h0.dim_size(0) != batch ||
      h0.dim_size(1) != units || c0.shape() != h0.shape())
    return errors::InvalidArgument("TfseqLstm: inconsistent shapes");
  if (mask.NumElements() != 0 && mask.shape() != TensorShape({seq.dim_size(0), batch}))
    return errors::InvalidArgument("TfseqLstm: the mask must be [steps, batch]");
  return OkStatus();
}

class LstmOp : public OpKernel {
 public:
  explicit LstmOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("zero_output_for_mask", &zero_output_));
    int threads = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("threads", &threads));
    PoolThreads(threads);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &xp = ctx->input(0), &bias = ctx->input(1), &h0 = ctx->input(2), &c0 = ctx->input(3);
    const Tensor &u = ctx->input(4), &mask = ctx->input(5);
    OP_REQUIRES_OK(ctx, CheckShapes(xp, h0, c0, u, mask));
    const int64_t steps = xp.dim_size(0), batch = xp.dim_size(1), units = u.dim_size(0);
    const int64_t width = 4 * units;
    OP_REQUIRES(ctx, bias.NumElements() == width, errors::InvalidArgument("TfseqLstm: bias size"));
    const bool masked = mask.NumElements() != 0;
    const TensorShape seq_shape({steps, batch, units});
    Tensor *h_seq, *c_seq, *gates, *h_last, *c_last, *out_seq, *out_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, seq_shape, &h_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, seq_shape, &c_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, xp.shape(), &gates));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, h0.shape(), &h_last));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, c0.shape(), &c_last));
    if (masked) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(5, seq_shape, &out_seq));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(6, h0.shape(), &out_last));
    }
    const float* x = xp.flat<float>().data();
    const float* b = bias.flat<float>().data();
    const bool* mk = masked ? mask.flat<bool>().data() : nullptr;
    const float* h_init = h0.flat<float>().data();
    const float* c_init = c0.flat<float>().data();
    float* hs = h_seq->flat<float>().data();
    float* cs = c_seq->flat<float>().data();
    float* gs = gates->flat<float>().data();
    float* os = masked ? out_seq->flat<float>().data() : nullptr;
    const ConstMatrixMap kernel(u.flat<float>().data(), units, width, Eigen::OuterStride<>(width));
    const ConstArray b_i(b, units), b_f(b + units, units), b_c(b + 2 * units, units), b_o(b + 3 * units, units);
    const bool zero_output = zero_output_;
    const int shards = Shards(batch);
    const bool ok = ParallelFor(shards, [&](int s) {
      const int64_t r0 = Split(batch, shards, s), rows = Split(batch, shards, s + 1) - r0;
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t at = t * batch + r0, before = (t - 1) * batch + r0;
        const float* h_prev = t == 0 ? h_init + r0 * units : hs + before * units;
        const float* c_prev = t == 0 ? c_init + r0 * units : cs + before * units;
        float* g = gs + at * width;
        MatrixMap(g, rows, width, Eigen::OuterStride<>(width)).noalias() =
            ConstMatrixMap(h_prev, rows, units, Eigen::OuterStride<>(units)) * kernel;
        for (int64_t r = 0; r < rows; ++r) {
          float* h = hs + (at + r) * units;
          float* c = cs + (at + r) * units;
          if (mk != nullptr && !mk[at + r]) {  // a masked step: states carry over
            std::copy_n(h_prev + r * units, units, h);
            std::copy_n(c_prev + r * units, units, c);
            float* out = os + (at + r) * units;
            if (zero_output || t == 0) std::fill_n(out, units, 0.0f);
            else std::copy_n(os + (before + r) * units, units, out);
            continue;
          }
          float* gr = g + r * width;
          const float* xr = x + (at + r) * width;
          Array i(gr, units), f(gr + units, units), cand(gr + 2 * units, units), o(gr + 3 * units, units);
          i = Sigmoid(i + ConstArray(xr, units) + b_i);
          f = Sigmoid(f + ConstArray(xr + units, units) + b_f);
          cand = (cand + ConstArray(xr + 2 * units, units) + b_c).tanh();
          o = Sigmoid(o + ConstArray(xr + 3 * units, units) + b_o);
          Array cr(c, units);
          cr = f * ConstArray(c_prev + r * units, units) + i * cand;
          Array(h, units) = o * cr.tanh();
          if (mk != nullptr) std::copy_n(h, units, os + (at + r) * units);
        }
      }
      const int64_t end = (steps - 1) * batch + r0;
      const float* h_end = steps == 0 ? h_init + r0 * units : hs + end * units;
      const float* c_end = steps == 0 ? c_init + r0 * units : cs + end * units;
      std::copy_n(h_end, rows * units, h_last->flat<float>().data() + r0 * units);
      std::copy_n(c_end, rows * units, c_last->flat<float>().data() + r0 * units);
      if (masked) {
        float* last = out_last->flat<float>().data() + r0 * units;
        if (steps == 0) std::fill_n(last, rows * units, 0.0f);
        else std::copy_n(os + end * units, rows * units, last);
      }
    });
    OP_REQUIRES(ctx, ok, errors::ResourceExhausted("TfseqLstm: out of memory"));
    if (!masked) {  // without a mask the outputs are the states
      ctx->set_output(5, *h_seq);
      ctx->set_output(6, *h_last);
    }
  }

 private:
  bool zero_output_ = false;
};

class LstmGradOp : public OpKernel {
 public:
  explicit LstmGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("zero_output_for_mask", &zero_output_));
    int threads = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("threads", &threads));
    PoolThreads(threads);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor &h0 = ctx->input(0), &c0 = ctx->input(1), &u = ctx->input(2);
    const Tensor &h_seq = ctx->input(3), &c_seq = ctx->input(4), &gates = ctx->input(5);
    const Tensor &mask = ctx->input(6), &d_out = ctx->input(7), &dh_last = ctx->input(8);
    const Tensor& dc_last = ctx->input(9);
    OP_REQUIRES_OK(ctx, CheckShapes(gates, h0, c0, u, mask));
    const int64_t steps = gates.dim_size(0), batch = gates.dim_size(1), units = u.dim_size(0);
    const int64_t width = 4 * units;
    const TensorShape seq_shape({steps, batch, units});
    const bool every_step = d_out.dims() == 3;
    OP_REQUIRES(ctx, h_seq.shape() == seq_shape && c_seq.shape() == seq_shape &&
                     (every_step ? d_out.shape() == seq_shape : d_out.shape() == h0.shape()) &&
                     dh_last.shape() == h0.shape() && dc_last.shape() == h0.shape(),
                errors::InvalidArgument("TfseqLstmGrad: inconsistent shapes"));
    Tensor *dxp, *dbias, *dh0, *dc0, *du;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gates.shape(), &dxp));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({width}), &dbias));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, c0.shape(), &dc0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, u.shape(), &du));
    const bool* mk = mask.NumElements() != 0 ? mask.flat<bool>().data() : nullptr;
    const float* hs = h_seq.flat<float>().data();
    const float* cs = c_seq.flat<float>().data();
    const float* gs = gates.flat<float>().data();
    const float* dos = d_out.flat<float>().data();
    const float* c_init = c0.flat<float>().data();
    const float* h_init = h0.flat<float>().data();
    float* dx = dxp->flat<float>().data();
    const bool zero_output = zero_output_;
    // kernel^T, row-major, so each step's product reads it in order.
    const Matrix kernel_t = ConstMatrixMap(u.flat<float>().data(), units, width, Eigen::OuterStride<>(width)).transpose();
    const int shards = Shards(batch);
    bool ok = ParallelFor(shards, [&](int s) {
      const int64_t r0 = Split(batch, shards, s), rows = Split(batch, shards, s + 1) - r0;
      // Gradients flowing into step t from later steps: through the states h and c, and, at
      // masked steps, through the output repeated from step t.
      Eigen::ArrayXf dh_next = ConstArray(dh_last.flat<float>().data() + r0 * units, rows * units);
      Eigen::ArrayXf dc_next = ConstArray(dc_last.flat<float>().data() + r0 * units, rows * units);
      Eigen::ArrayXf d_repeat = every_step ? Eigen::ArrayXf::Zero(rows * units)
                                           : Eigen::ArrayXf(ConstArray(dos + r0 * units, rows * units));
      Matrix d_prev(rows, units);
      Eigen::ArrayXf tanh_c(units);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t at = t * batch + r0;
        const float* c_prev = t == 0 ? c_init + r0 * units : cs + ((t - 1) * batch + r0) * units;
        if (every_step) Array(d_repeat.data(), rows * units) += ConstArray(dos + at * units, rows * units);
        bool any_masked = false;
        for (int64_t r = 0; r < rows; ++r) {
          float* dr = dx + (at + r) * width;
          Array dh_r(dh_next.data() + r * units, units), dc_r(dc_next.data() + r * units, units);
          Array d_out_r(d_repeat.data() + r * units, units);
          if (mk != nullptr && !mk[at + r]) {  // states passed through; the output repeats
            any_masked = true;
            std::fill_n(dr, width, 0.0f);
            if (zero_output) d_out_r.setZero();
            continue;
          }
          dh_r += d_out_r;
          d_out_r.setZero();
          const float* gr = gs + (at + r) * width;
          const ConstArray i(gr, units), f(gr + units, units), cand(gr + 2 * units, units), o(gr + 3 * units, units);
          tanh_c = ConstArray(cs + (at + r) * units, units).tanh();
          dc_r += dh_r * o * (1.0f - tanh_c * tanh_c);
          Array(dr, units) = dc_r * cand * i * (1.0f - i);
          Array(dr + units, units) = dc_r * ConstArray(c_prev + r * units, units) * f * (1.0f - f);
          Array(dr + 2 * units, units) = dc_r * i * (1.0f - cand * cand);
          Array(dr + 3 * units, units) = dh_r * tanh_c * o * (1.0f - o);
          dc_r *= f;
        }
        const auto d_gates = ConstMatrixMap(dx + at * width, rows, width, Eigen::OuterStride<>(width));
        MatrixMap dh_map(dh_next.data(), rows, units, Eigen::OuterStride<>(units));
        if (!any_masked) {
          dh_map.noalias() = d_gates * kernel_t;
          continue;
        }
        d_prev.noalias() = d_gates * kernel_t;
        for (int64_t r = 0; r < rows; ++r)
          if (mk[at + r]) dh_map.row(r) = d_prev.row(r);
      }
      // The output before the first step is a constant zero, so d_repeat ends there; with no
      // steps at all the last output is h0 itself.
      if (steps == 0) dh_next += d_repeat;
      std::copy_n(dh_next.data(), rows * units, dh0->flat<float>().data() + r0 * units);
      std::copy_n(dc_next.data(), rows * units, dc0->flat<float>().data() + r0 * units);
    });
    // d_kernel = sum over steps of h_{t-1}^T @ d_gates_t and d_bias = column sums of d_gates,
    // as one product over all steps, its columns split across threads.
    float* dk = du->flat<float>().data();
    float* db = dbias->flat<float>().data();
    const int64_t blocks = width / 16;  // column blocks of 16 floats: one AVX-512 register
    const int col_shards = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(PoolThreads(0), blocks / 4)));
    ok = ok && ParallelFor(col_shards, [&](int s) {
      const int64_t first = Split(blocks, col_shards, s) * 16;
      const int64_t last = s == col_shards - 1 ? width : Split(blocks, col_shards, s + 1) * 16;
      const int64_t cols = last - first;
      if (cols <= 0) return;
      MatrixMap out(dk + first, units, cols, Eigen::OuterStride<>(width));
      if (steps == 0) {
        out.setZero();
        Array(db + first, cols).setZero();
        return;
      }
      const ConstMatrixMap d_all(dx + first, steps * batch, cols, Eigen::OuterStride<>(width));
      out.noalias() = ConstMatrixMap(h_init, batch, units, Eigen::OuterStride<>(units)).transpose() *
                      d_all.topRows(batch);
      if (steps > 1)
        out.noalias() += ConstMatrixMap(hs, (steps - 1) * batch, units, Eigen::OuterStride<>(units)).transpose() *
                         d_all.bottomRows((steps - 1) * batch);
      Eigen::Map<Eigen::RowVectorXf>(db + first, cols) = d_all.colwise().sum();
    });
    OP_REQUIRES(ctx, ok, errors::ResourceExhausted("TfseqLstmGrad: out of memory"));
  }

 private:
  bool zero_output_ = false;
};

}  // namespace

REGISTER_OP("TfseqLstm")
    .Input("projected: float")
    .Input("bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("kernel: float")
    .Input("mask: bool")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("threads: int = 0")
    .Output("h_seq: float")
    .Output("c_seq: float")
    .Output("gates: float")
    .Output("h_last: float")
    .Output("c_last: float")
    .Output("out_seq: float")
    .Output("out_last: float")
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      shape_inference::ShapeHandle xp, bias, h0, c0, kernel, mask, seq;
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(0), 3, &xp));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(1), 1, &bias));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(2), 2, &h0));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(3), 2, &c0));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(4), 2, &kernel));
      TF_RETURN_IF_ERROR(ctx->WithRankAtMost(ctx->input(5), 2, &mask));
      TF_RETURN_IF_ERROR(ctx->Concatenate(ctx->Vector(ctx->Dim(xp, 0)), h0, &seq));
      ctx->set_output(0, seq);
      ctx->set_output(1, seq);
      ctx->set_output(2, xp);
      ctx->set_output(3, h0);
      ctx->set_output(4, h0);
      ctx->set_output(5, seq);
      ctx->set_output(6, h0);
      return OkStatus();
    });

REGISTER_OP("TfseqLstmGrad")
    .Input("h0: float")
    .Input("c0: float")
    .Input("kernel: float")
    .Input("h_seq: float")
    .Input("c_seq: float")
    .Input("gates: float")
    .Input("mask: bool")
    .Input("d_out: float")
    .Input("dh_last: float")
    .Input("dc_last: float")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("threads: int = 0")
    .Output("d_projected: float")
    .Output("d_bias: float")
    .Output("dh0: float")
    .Output("dc0: float")
    .Output("d_kernel: float")
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      shape_inference::ShapeHandle h0, c0, kernel, h_seq, c_seq, gates, mask, d_out, dh_last, dc_last;
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(0), 2, &h0));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(1), 2, &c0));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(2), 2, &kernel));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(3), 3, &h_seq));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(4), 3, &c_seq));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(5), 3, &gates));
      TF_RETURN_IF_ERROR(ctx->WithRankAtMost(ctx->input(6), 2, &mask));
      TF_RETURN_IF_ERROR(ctx->WithRankAtLeast(ctx->input(7), 2, &d_out));
      TF_RETURN_IF_ERROR(ctx->WithRankAtMost(ctx->input(7), 3, &d_out));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(8), 2, &dh_last));
      TF_RETURN_IF_ERROR(ctx->WithRank(ctx->input(9), 2, &dc_last));
      ctx->set_output(0, gates);
      ctx->set_output(1, ctx->Vector(ctx->Dim(gates, 2)));
      ctx->set_output(2, h0);
      ctx->set_output(3, c0);
      ctx->set_output(4, kernel);
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("TfseqLstm").Device(DEVICE_CPU), LstmOp);
REGISTER_KERNEL_BUILDER(Name("TfseqLstmGrad").Device(DEVICE_CPU), LstmGradOp);

}  // namespace tensorflow
