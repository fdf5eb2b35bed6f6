  // The likelihoods of three or more group terms, one group at a time (glm_marginal.stan and
  // glm_collapsed.stan; the fused twins compute one or two group terms only).
  // sum_j log det A_j and sum_j d_j' A_j^-1 d_j, A_j = sigma^2 I + (M_j L)(M_j L)'.
  // Groups are padded to q rows (a padded row has M = 0, d = 0: it adds log sigma^2).
  vector glm_group_terms(array[] matrix M, array[] vector d, matrix L, real s2) {
    int J = size(M);
    int q = cols(L);
    real logdet = 0;
    real quad = 0;
    for (j in 1:J) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      vector[q] v = mdivide_left_tri_low(LA, d[j]);
      logdet += 2 * sum(log(diagonal(LA)));
      quad += dot_self(v);
    }
    return [logdet, quad]';
  }
  // log p(y | beta, Sigma, sigma), group effects integrated out (DESIGN.md, "Marginal").
  real glm_marginal_ll(vector beta, matrix L, real sigma, int N, array[] matrix M,
                         array[] vector e_star, array[] matrix F, matrix C2, vector beta_star,
                         real rss_min) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta);
    real s2 = square(sigma);
    vector[p] delta = beta - beta_star;
    real logdet = (N - J * q) * log(s2);
    real quad = (rss_min + quad_form(C2, delta)) / s2;
    if (q > 0) {
      array[J] vector[q] d;
      for (j in 1:J) {
        d[j] = e_star[j] - F[j] * delta;
      }
      vector[2] t = glm_group_terms(M, d, L, s2);
      logdet += t[1];
      quad += t[2];
    }
    return -0.5 * (N * log(2 * pi()) + logdet + quad);
  }
  // log p(y | Sigma, sigma) with beta ~ N(beta_loc, diag(beta_scale^2)) integrated out as well
  // (DESIGN.md, "Collapsed"). Everything is relative to beta_star, so nothing large cancels as
  // sigma -> 0. A non-finite or indefinite P rejects the proposal (Stan's cholesky_decompose throws).
  real glm_collapsed_ll(matrix L, real sigma, int N, array[] matrix M, array[] vector e_star,
                        array[] matrix F, matrix C2, vector beta_star, real rss_min,
                        vector beta_loc, vector beta_scale) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta_star);
    real s2 = square(sigma);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    real q0 = dot_self((beta_star - beta_loc) ./ beta_scale);
    real logdet = (N - J * q) * log(s2) + 2 * sum(log(beta_scale));
    for (j in 1:(q > 0 ? J : 0)) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      matrix[q, p] FA = mdivide_left_tri_low(LA, F[j]);
      vector[q] ea = mdivide_left_tri_low(LA, e_star[j]);
      P += crossprod(FA);
      g += FA' * ea;
      q0 += dot_self(ea);
      logdet += 2 * sum(log(diagonal(LA)));
    }
    if (p == 0) {
      return -0.5 * (N * log(2 * pi()) + logdet + rss_min / s2 + q0);
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g);
    return -0.5 * (N * log(2 * pi()) + logdet + 2 * sum(log(diagonal(LP))) + rss_min / s2 + q0
                   - dot_self(w));
  }
