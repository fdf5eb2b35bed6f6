  // The likelihoods of glm_marginal.stan and glm_collapsed.stan for one or two group terms, in
  // Stan (vectorised over the groups). glm_*_fused.stan declare the same functions and take
  // them, value and gradient, from hierlin_fused.hpp (CmdStan); tests hold both equal.
  // svec, sdet: glm_svec / glm_sdet (Sigma's entries, det Sigma); q = 1 when svec has one entry.
  // Marginal: log p(y | beta, Sigma, sigma), same value as glm_marginal_ll.
  real hierlin_glm_marginal_ll(vector beta, vector svec, real sdet, real sigma, int N, data vector m2,
                               data vector e1, data vector e2, data matrix F1, data matrix F2,
                               data matrix MA11, data matrix MA12, data matrix MA22, data vector detM2,
                               data matrix C2, data vector beta_star, data real rss_min) {
    int q = rows(svec) == 1 ? 1 : 2;
    int J = rows(e1);
    real s2 = square(sigma);
    vector[rows(beta)] delta = beta - beta_star;
    real logdet = (N - J * q) * log(s2);
    real quad = (rss_min + quad_form(C2, delta)) / s2;
    vector[J] d1 = e1 - F1 * delta;
    if (q == 1) {
      vector[J] a = s2 + m2 * svec[1];
      logdet += sum(log(a));
      quad += sum(square(d1) ./ a);
    } else {
      vector[J] d2 = e2 - F2 * delta;
      tuple(matrix[J, 3], real) inv = glm_q2_inverse(MA11, MA12, MA22, detM2, svec, sdet, s2);
      logdet += inv.2;
      quad += dot_product(inv.1[ : , 1], square(d1)) + 2 * dot_product(inv.1[ : , 2], d1 .* d2)
              + dot_product(inv.1[ : , 3], square(d2));
    }
    return -0.5 * (N * log(2 * pi()) + logdet + quad);
  }
  // Collapsed: log p(y | Sigma, sigma), beta integrated out too; same value as glm_collapsed_ll.
  // FFk (J x p(p+1)/2), FEk (J x p), EEk (J) are the data products of F and e* weighted by
  // A^-1 entry k (q = 1: one entry; q = 2: [11, 12, 22]); the fused twin reads F and e* instead.
  real hierlin_glm_collapsed_ll(vector svec, real sdet, real sigma, int N, data vector m2, data vector e1,
                                data vector e2, data matrix F1, data matrix F2, data matrix MA11,
                                data matrix MA12, data matrix MA22, data vector detM2, data matrix FF1,
                                data matrix FF2, data matrix FF3, data matrix FE1, data matrix FE2,
                                data matrix FE3, data vector EE1, data vector EE2, data vector EE3,
                                data matrix C2, data vector beta_star, data real rss_min,
                                data vector beta_loc, data vector beta_scale) {
    int q = rows(svec) == 1 ? 1 : 2;
    int J = rows(e1);
    int p = rows(beta_star);
    real s2 = square(sigma);
    tuple(matrix[p, p], vector[p], real, real) pg = glm_collapsed_pg(svec, sdet, s2, m2, MA11, MA12, MA22, detM2,
                                                                      FF1, FF2, FF3, FE1, FE2, FE3, EE1, EE2, EE3,
                                                                      C2, beta_star, beta_loc, beta_scale);
    matrix[p, p] P = pg.1;
    vector[p] g = pg.2;
    real q0 = pg.3;
    real logdet = (N - J * q) * log(s2) + 2 * sum(log(beta_scale)) + pg.4;
    if (p == 0) {
      return -0.5 * (N * log(2 * pi()) + logdet + rss_min / s2 + q0);
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g);
    return -0.5 * (N * log(2 * pi()) + logdet + 2 * sum(log(diagonal(LP))) + rss_min / s2 + q0
                   - dot_self(w));
  }
  // Any other number of group terms (three or more, or none): the block form group by group
  // (glm_loop_functions.stan); L is glm_sigma_factor.
  real hierlin_glm_marginal_loop_ll(vector beta, matrix L, real sigma, int N, data array[] matrix M,
                                    data array[] vector e_star, data array[] matrix F, data matrix C2,
                                    data vector beta_star, data real rss_min) {
    return glm_marginal_ll(beta, L, sigma, N, M, e_star, F, C2, beta_star, rss_min);
  }
  real hierlin_glm_collapsed_loop_ll(matrix L, real sigma, int N, data array[] matrix M, data array[] vector e_star,
                                     data array[] matrix F, data matrix C2, data vector beta_star, data real rss_min,
                                     data vector beta_loc, data vector beta_scale) {
    return glm_collapsed_ll(L, sigma, N, M, e_star, F, C2, beta_star, rss_min, beta_loc, beta_scale);
  }
