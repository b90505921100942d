// The names of the closed vocabularies of doppel/model.h, as they are
// spelled in the catalogue, the CLI's CSV/JSON and the HTTP API.
#include "doppel/model.h"

namespace doppel {

const char* ContentHashKindName(ContentHashKind k) {
  switch (k) {
    case ContentHashKind::kJpegSegments:
      return "jpeg-segments";
    case ContentHashKind::kPngChunks:
      return "png-chunks";
    case ContentHashKind::kPixels:
      return "pixels";
  }
  return "?";
}

const char* MatchKindName(MatchKind k) {
  switch (k) {
    case MatchKind::kExact:
      return "exact";
    case MatchKind::kMetadata:
      return "metadata";
    case MatchKind::kNear:
      return "near";
    case MatchKind::kSimilar:
      return "similar";
  }
  return "?";
}

std::optional<MatchKind> ParseMatchKind(std::string_view s) {
  for (int k = 0; k < 4; ++k)
    if (s == MatchKindName(MatchKind(k))) return MatchKind(k);
  return std::nullopt;
}

}  // namespace doppel
