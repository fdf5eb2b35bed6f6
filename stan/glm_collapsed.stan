// General hierarchical linear model with the group effects AND the common coefficients
// integrated out exactly: NUTS sees only tau, sigma (and the correlation of the group terms).
//   y = X beta + Z u_g + e,  e ~ N(0, sigma),  u_j ~ MVN(0, Sigma),  beta ~ N(beta_loc, beta_scale).
// beta and then u are drawn exactly in generated quantities.
functions {
#include glm_functions.stan
#include glm_loop_functions.stan
#include glm_pure_functions.stan
}
#include glm_collapsed_program.stan
