// Incremental SHA-256 over OpenSSL's libcrypto (SHA-NI where the CPU has it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "doppel/digest.h"

namespace doppel {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  // Returns the digest and resets the object for reuse.
  Digest Finish();

  static Digest Of(const void* data, size_t size);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel
