package protocol

// ResourceTrust is the resource key of the sender's agent CA bundle and advertised endpoints
// (a Trust payload). Link resource keys are named by package link.
const ResourceTrust = "trust"
