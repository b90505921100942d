#include "doppel/status.h"

namespace doppel {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kCorruption:
      return "corrupt";
    case StatusCode::kUnsupported:
      return "unsupported";
    case StatusCode::kTooLarge:
      return "too_large";
    case StatusCode::kIOError:
      return "io_error";
    case StatusCode::kDiskFull:
      return "disk_full";
    case StatusCode::kChanged:
      return "changed";
    case StatusCode::kCancelled:
      return "cancelled";
    case StatusCode::kBusy:
      return "busy";
    case StatusCode::kAlreadyExists:
      return "already_exists";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace doppel
