// Package budget chooses one option per unit — a scheme per weight — to
// meet a budget: the smallest predicted error within a size, or the
// smallest size within an error. Each option has a size in bytes and a
// predicted error that adds up over units (the measured output KL
// divergence of the model with that weight alone quantized that way).
//
// The allocation walks one path from the largest mix (every unit at its
// most accurate option) to the smallest: each step moves one unit down its
// lower convex hull of (bytes, error), taking the step that adds the least
// error per byte saved. Every point of the path is optimal for its own
// size (the linear relaxation of this multiple-choice knapsack is solved
// by the path, and at its points the relaxation's solution is a real
// mix); between points a last pass spends the bytes or the error still
// left on single-unit moves. Ties break by unit index, so the result is
// deterministic.
//
// The package is pure arithmetic on tables: it knows nothing of models,
// schemes or files.
package budget
