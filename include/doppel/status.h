// Status and Result<T>: how every fallible doppel operation reports failure.
//
// The library never throws across its public surface, never prints and never
// exits. A failure is a Status with a code a caller can branch on and a message
// that names the object and, where there is one, what happens next.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace doppel {

enum class StatusCode {
  kOk = 0,
  kNotFound,         // a named object (file, source, record) does not exist
  kInvalidArgument,  // the caller asked for something malformed
  kCorruption,       // bytes are not what their format says (truncated, corrupt)
  kUnsupported,      // a valid object of a kind doppel does not handle
  kTooLarge,         // refused by a configured limit (pixels, bytes)
  kIOError,          // the operating system refused (read, write, open)
  kDiskFull,         // no space left where doppel writes
  kChanged,          // the object changed while doppel was reading it
  kCancelled,        // the caller asked to stop
  kBusy,             // another process holds a lock; try again
  kAlreadyExists,    // a unique name is taken
  kInternal,         // a bug in doppel or a third-party library
};

// Short stable name of a code ("corruption", "too_large", ...), used as the
// error kind stored in the catalogue and printed in JSON.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corruption: photos/a.jpg: truncated JPEG" style text.
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
inline Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
inline Status DiskFull(std::string m) { return {StatusCode::kDiskFull, std::move(m)}; }
inline Status Changed(std::string m) { return {StatusCode::kChanged, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace doppel

// Propagates a non-OK Status from an expression returning Status.
#define DOPPEL_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::doppel::Status doppel_status_ = (expr);        \
    if (!doppel_status_.ok()) return doppel_status_; \
  } while (0)

#define DOPPEL_CONCAT_INNER_(a, b) a##b
#define DOPPEL_CONCAT_(a, b) DOPPEL_CONCAT_INNER_(a, b)
// `DOPPEL_ASSIGN_OR_RETURN(auto x, Fn());` declares x from a Result or returns its Status.
// `decl` is a declaration, so it cannot take parentheses.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define DOPPEL_ASSIGN_OR_RETURN(decl, expr)                   \
  auto DOPPEL_CONCAT_(doppel_result_, __LINE__) = (expr);     \
  if (!DOPPEL_CONCAT_(doppel_result_, __LINE__).ok())         \
    return DOPPEL_CONCAT_(doppel_result_, __LINE__).status(); \
  decl = std::move(DOPPEL_CONCAT_(doppel_result_, __LINE__)).value()
// NOLINTEND(bugprone-macro-parentheses)
