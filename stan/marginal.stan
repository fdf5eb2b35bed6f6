// Hierarchical linear regression with the slopes b integrated out exactly.
//
// Group j's observations are MVN(a + mu_b x, eps^2 I + sigma_b^2 x x'). With the
// matrix determinant lemma and Sherman-Morrison, and r = y - a - mu_b x:
//   log det = (n_j - 1) log eps^2 + log(eps^2 + sigma_b^2 Sxx_j)
//   r' S^-1 r = RSSperp_j / eps^2 + Sxr_j^2 / (Sxx_j (eps^2 + sigma_b^2 Sxx_j))
// where RSSperp_j = sum (y - a)^2 - (sum x (y - a))^2 / Sxx_j, summed over groups, is
// rss_min + c2 (a - a*)^2 with the constants computed once from the rows (exactly 0 for
// one-point groups, which keeps the density finite as eps -> 0; nothing large cancels).
// Given the per-group sums, one gradient costs O(J), whatever N is. b_j is drawn
// exactly from its conditional posterior in generated quantities.
// marginal_fused.stan is this program with the likelihood's value and gradient in C++.
functions {
#include priors_functions.stan
#include marginal_functions.stan
}
#include marginal_program.stan
