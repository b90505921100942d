#include "util/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace doppel {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  // Allocation failure of a few hundred bytes: nothing sensible to recover.
  if (!impl_->ctx || !EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr)) std::abort();
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(const void* data, size_t size) {
  if (size) EVP_DigestUpdate(impl_->ctx, data, size);
}

Digest Sha256::Finish() {
  Digest d{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, d.data(), &len);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return d;
}

Digest Sha256::Of(const void* data, size_t size) {
  Sha256 h;
  h.Update(data, size);
  return h.Finish();
}

}  // namespace doppel
