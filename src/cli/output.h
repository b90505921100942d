// Formatting for the command line: sizes, durations, aligned tables. CSV is
// util/csv.h's CsvLine, with the mode of Globals::csv.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace doppel::cli {

std::string HumanBytes(int64_t bytes);      // "1.2 MB"
std::string HumanDuration(double seconds);  // "3m12s"

// Columns padded to the widest cell; the first row is the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);

}  // namespace doppel::cli
