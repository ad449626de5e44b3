// Status and StatusOr: errors as values at every module boundary.
//
// A Status is ok() or carries a code and a message. Codes hold across the wire protocol and
// the command line: `ExitCodeFor(status)` maps them to sd2ctl's exit codes (0 ok, 2 bad
// input, 1 anything else).
//
//   sd2::StatusOr<Spec> spec = LoadSweepFile(path);
//   if (!spec.ok()) { std::cerr << spec.status() << "\n"; return ExitCodeFor(spec.status()); }
//   SD2_ASSIGN_OR_RETURN(auto trials, Expand(*spec));
#ifndef SD2_COMMON_STATUS_H_
#define SD2_COMMON_STATUS_H_

#include <cassert>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>

namespace sd2 {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad input from a user: a config, a file, a flag
  kNotFound = 2,
  kAlreadyExists = 3,
  kFailedPrecondition = 4,
  kAborted = 5,      // e.g. a stale lease, a cancelled trial
  kUnavailable = 6,  // transient: peer gone, database busy
  kDeadlineExceeded = 7,
  kDataLoss = 8,           // corrupt file or database
  kResourceExhausted = 9,  // disk full, limits
  kCancelled = 10,
  kUnimplemented = 11,
  kInternal = 12,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;
  // Returns a copy with `prefix + ": "` in front of the message (no-op when ok).
  Status WithPrefix(const std::string& prefix) const;

  bool operator==(const Status& o) const { return code_ == o.code_ && message_ == o.message_; }
  bool operator!=(const Status& o) const { return !(*this == o); }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceededError(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status CancelledError(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status UnimplementedError(std::string m) {
  return {StatusCode::kUnimplemented, std::move(m)};
}
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

std::ostream& operator<<(std::ostream& os, const Status& s);

// sd2ctl / sd2-worker exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;
int ExitCodeFor(const Status& s);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& s) : v_(s) { assert(!s.ok() && "StatusOr from an ok Status"); }  // NOLINT
  StatusOr(Status&& s) : v_(std::move(s)) { assert(!std::get<Status>(v_).ok()); }         // NOLINT
  StatusOr(const T& v) : v_(v) {}                                                         // NOLINT
  StatusOr(T&& v) : v_(std::move(v)) {}                                                   // NOLINT
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, StatusOr<T>> &&
                                                    !std::is_same_v<std::decay_t<U>, T>>>
  StatusOr(U&& u) : v_(T(std::forward<U>(u))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace sd2

#define SD2_STATUS_CONCAT_INNER_(a, b) a##b
#define SD2_STATUS_CONCAT_(a, b) SD2_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not ok.
#define SD2_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::sd2::Status sd2_status_ = (expr);        \
    if (!sd2_status_.ok()) return sd2_status_; \
  } while (0)

// `SD2_ASSIGN_OR_RETURN(auto x, F());` declares x from an ok StatusOr or returns its status.
#define SD2_ASSIGN_OR_RETURN(lhs, expr) \
  SD2_ASSIGN_OR_RETURN_IMPL_(SD2_STATUS_CONCAT_(sd2_statusor_, __LINE__), lhs, expr)
#define SD2_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // SD2_COMMON_STATUS_H_
