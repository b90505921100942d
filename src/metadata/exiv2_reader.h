// Reads capture date, camera, authorship, GPS, title and keywords with exiv2.
// The only place exiv2 is used: its exceptions are caught here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "doppel/model.h"

namespace doppel {

// Once per process, before any other call (mutes exiv2's console output,
// initialises its XMP parser for multi-threaded use). Idempotent.
void InitExiv2();

// Never fails: a file whose metadata cannot be parsed yields empty fields and
// a line in ImageMetadata::warnings. Thread-safe.
ImageMetadata ReadMetadataFromBuffer(const uint8_t* data, size_t size);
ImageMetadata ReadMetadataFromFile(const std::string& path);

}  // namespace doppel
