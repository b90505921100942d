// A SHA-256 value and its hex form: the identity of a file's bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace doppel {

using Digest = std::array<uint8_t, 32>;  // a SHA-256 value
std::string DigestHex(const Digest& d);
std::optional<Digest> DigestFromHex(const std::string& hex);

}  // namespace doppel
