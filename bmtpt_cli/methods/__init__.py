"""Transfer methods, one module each (`pt`, `multitask`, `particles`: bmtpt, bmtpt-noprior and
particle-I, `spot`, `from_prompts`), what a method is (`base`), where a target prompt starts (`init`,
`retrieve`) and the registry by name (`registry`)."""
