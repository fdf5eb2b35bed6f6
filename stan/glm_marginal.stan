// General hierarchical linear model with the group effects integrated out exactly:
//   y = X beta + Z u_g + e,  e ~ N(0, sigma),  u_j ~ MVN(0, Sigma),  Sigma = diag(tau) Omega diag(tau).
// Only per-group sufficient statistics enter (hierlin_stan.model.sums): one gradient costs
// O(J q^3 + p^2), whatever N is; exact for rank-deficient groups and stable as sigma -> 0.
// u is drawn exactly in generated quantities.
functions {
#include glm_functions.stan
#include glm_loop_functions.stan
#include glm_pure_functions.stan
}
#include glm_marginal_program.stan
